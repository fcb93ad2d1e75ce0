package auth

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "accounts.json")
	s, err := OpenStore(path)
	require.NoError(t, err)
	return s, path
}

func mustCreate(t *testing.T, s *Store, name string) (string, Account) {
	t.Helper()
	key, acct, err := s.CreateAccount(name, "")
	require.NoError(t, err)
	return key, acct
}

var keyPattern = regexp.MustCompile(`^fl_[0-9a-f]{16}_[a-z2-7]{52}$`)

func TestCreateAuthenticateAssignDelete(t *testing.T) {
	s, _ := openTemp(t)
	before := time.Now()
	key, acct, err := s.CreateAccount("  ads-ingest ", " writes impressions\n")
	require.NoError(t, err)

	assert.Regexp(t, keyPattern, key)
	assert.Equal(t, "fl_"+acct.ID+"_", key[:20], "the key carries the account ID")
	assert.Equal(t, "ads-ingest", acct.Name, "name is trimmed")
	assert.Equal(t, "writes impressions", acct.Description)
	assert.Empty(t, acct.Roles)
	assert.NotNil(t, acct.Roles)
	assert.False(t, acct.CreatedAt.Before(before.Add(-time.Millisecond)))
	assert.Equal(t, time.UTC, acct.CreatedAt.Location())

	p, err := s.Authenticate(key)
	require.NoError(t, err)
	assert.Equal(t, acct.ID, p.AccountID)
	assert.False(t, p.Allowed("ads", Viewer), "a new account has no roles")

	require.NoError(t, s.AssignRole(acct.ID, "ads", Editor))
	assert.False(t, p.Allowed("ads", Viewer), "a Principal is a snapshot")
	p, err = s.Authenticate(key)
	require.NoError(t, err)
	assert.True(t, p.Allowed("ads", Editor))
	assert.False(t, p.Allowed("ads", Owner))

	require.NoError(t, s.AssignRole(acct.ID, "ads", Viewer), "a role can be lowered")
	p, err = s.Authenticate(key)
	require.NoError(t, err)
	assert.True(t, p.Allowed("ads", Viewer))
	assert.False(t, p.Allowed("ads", Editor))

	got, ok := s.Account(acct.ID)
	require.True(t, ok)
	assert.Equal(t, map[string]Role{"ads": Viewer}, got.Roles)

	require.NoError(t, s.DeleteAccount(acct.ID))
	_, err = s.Authenticate(key)
	assert.ErrorIs(t, err, ErrUnauthenticated, "revocation takes effect at once")
	_, ok = s.Account(acct.ID)
	assert.False(t, ok)
	assert.ErrorIs(t, s.DeleteAccount(acct.ID), ErrNoSuchAccount)
	assert.ErrorIs(t, s.AssignRole(acct.ID, "ads", Owner), ErrNoSuchAccount)
}

func TestKeysAreDistinctAndBoundToTheirAccount(t *testing.T) {
	s, _ := openTemp(t)
	keyA, a := mustCreate(t, s, "a")
	keyB, b := mustCreate(t, s, "b")
	assert.NotEqual(t, a.ID, b.ID)
	assert.NotEqual(t, keyA, keyB)

	// A's secret with B's ID (and vice versa) must fail.
	forged := "fl_" + b.ID + keyA[19:]
	_, err := s.Authenticate(forged)
	assert.ErrorIs(t, err, ErrUnauthenticated)

	// Flipping any character of the secret fails.
	for i := 20; i < len(keyA); i++ {
		c := byte('a')
		if keyA[i] == 'a' {
			c = 'b'
		}
		k := keyA[:i] + string(c) + keyA[i+1:]
		_, err := s.Authenticate(k)
		require.ErrorIs(t, err, ErrUnauthenticated, "position %d", i)
	}
	_, err = s.Authenticate(keyB)
	require.NoError(t, err)
}

func TestOnlyTheHashIsOnDisk(t *testing.T) {
	s, path := openTemp(t)
	key, acct := mustCreate(t, s, "svc")
	require.NoError(t, s.AssignRole(acct.ID, "ads", Owner))

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(data), key)
	assert.NotContains(t, string(data), key[20:], "nor the secret alone")
	h := hashKey(key)
	assert.Contains(t, string(data), fmt.Sprintf(`"key_sha256": "%x"`, h[:]))

	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// No temp files left behind.
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1)

	// The layout documented in doc.go.
	var f map[string]any
	require.NoError(t, json.Unmarshal(data, &f))
	assert.EqualValues(t, 1, f["version"])
	accts := f["accounts"].([]any)
	require.Len(t, accts, 1)
	a := accts[0].(map[string]any)
	assert.Equal(t, acct.ID, a["id"])
	assert.Equal(t, "svc", a["name"])
	assert.Equal(t, map[string]any{"ads": "owner"}, a["roles"])
	assert.Len(t, a, 5, "id, name, created_at, key_sha256, roles (empty description omitted): %v", a)
}

func TestPersistenceAcrossOpen(t *testing.T) {
	s, path := openTemp(t)
	k1, a1 := mustCreate(t, s, "one")
	k2, a2 := mustCreate(t, s, "two")
	k3, a3 := mustCreate(t, s, "three")
	require.NoError(t, s.AssignRole(a1.ID, "ads", Owner))
	require.NoError(t, s.AssignRole(a1.ID, "fraud", Viewer))
	require.NoError(t, s.AssignRole(a2.ID, "ads", Editor))
	require.NoError(t, s.DeleteAccount(a3.ID))

	s2, err := OpenStore(path)
	require.NoError(t, err)
	assert.Equal(t, s.Accounts(), s2.Accounts())
	assert.Len(t, s2.Accounts(), 2)

	p, err := s2.Authenticate(k1)
	require.NoError(t, err)
	assert.True(t, p.Allowed("ads", Owner))
	assert.True(t, p.Allowed("fraud", Viewer))
	assert.False(t, p.Allowed("fraud", Editor))
	p, err = s2.Authenticate(k2)
	require.NoError(t, err)
	assert.True(t, p.Allowed("ads", Editor))
	_, err = s2.Authenticate(k3)
	assert.ErrorIs(t, err, ErrUnauthenticated)

	got, ok := s2.Account(a1.ID)
	require.True(t, ok)
	assert.True(t, a1.CreatedAt.Equal(got.CreatedAt))
	assert.Equal(t, a1.CreatedAt, got.CreatedAt, "nanoseconds and UTC survive the round trip")
}

func TestReload(t *testing.T) {
	server, path := openTemp(t)
	key, acct := mustCreate(t, server, "svc")

	cli, err := OpenStore(path) // e.g. the CLI, changing the file
	require.NoError(t, err)
	require.NoError(t, cli.AssignRole(acct.ID, "ads", Editor))
	key2, _ := mustCreate(t, cli, "other")

	p, err := server.Authenticate(key)
	require.NoError(t, err)
	assert.False(t, p.Allowed("ads", Editor), "not seen before Reload")
	require.NoError(t, server.Reload())
	p, err = server.Authenticate(key)
	require.NoError(t, err)
	assert.True(t, p.Allowed("ads", Editor))
	_, err = server.Authenticate(key2)
	require.NoError(t, err)

	// A failed Reload keeps the current state.
	require.NoError(t, os.WriteFile(path, []byte("{"), 0o600))
	assert.ErrorIs(t, server.Reload(), ErrCorruptStore)
	_, err = server.Authenticate(key2)
	require.NoError(t, err)
}

func TestMissingFileIsEmptyStore(t *testing.T) {
	s, path := openTemp(t)
	assert.Empty(t, s.Accounts())
	assert.Equal(t, path, s.Path())
	_, err := os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "opening does not create the file")
	require.NoError(t, s.Reload())
}

func TestAccountsSortedAndCopied(t *testing.T) {
	s, _ := openTemp(t)
	var want []string
	for i := range 20 {
		_, a := mustCreate(t, s, fmt.Sprintf("svc-%d", i))
		want = append(want, a.ID)
	}
	all := s.Accounts()
	require.Len(t, all, 20)
	for i := 1; i < len(all); i++ {
		prev, cur := all[i-1], all[i]
		ordered := prev.CreatedAt.Before(cur.CreatedAt) ||
			prev.CreatedAt.Equal(cur.CreatedAt) && prev.ID < cur.ID
		require.True(t, ordered, "accounts %d and %d out of order", i-1, i)
	}
	var got []string
	for _, a := range all {
		got = append(got, a.ID)
	}
	assert.ElementsMatch(t, want, got)

	// Changing returned values changes nothing in the store.
	all[0].Roles["ads"] = Owner
	all[0].Name = "changed"
	a, ok := s.Account(all[0].ID)
	require.True(t, ok)
	assert.Empty(t, a.Roles)
	assert.Equal(t, "svc-0", a.Name)
	a.Roles["ads"] = Owner
	a2, _ := s.Account(all[0].ID)
	assert.Empty(t, a2.Roles)
}

func TestAccountsSortTiesByID(t *testing.T) {
	at := time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC)
	snap := &snapshot{accounts: map[string]*entry{}}
	for _, id := range []string{"ffffffffffffffff", "0000000000000001", "aaaaaaaaaaaaaaaa"} {
		snap.accounts[id] = &entry{acct: Account{ID: id, Name: "x", CreatedAt: at}}
	}
	snap.accounts["0000000000000009"] = &entry{acct: Account{ID: "0000000000000009", Name: "x", CreatedAt: at.Add(-time.Second)}}
	var ids []string
	for _, a := range snap.sorted() {
		ids = append(ids, a.ID)
	}
	assert.Equal(t, []string{"0000000000000009", "0000000000000001", "aaaaaaaaaaaaaaaa", "ffffffffffffffff"}, ids)
}

func TestInputValidation(t *testing.T) {
	s, path := openTemp(t)
	_, acct := mustCreate(t, s, "svc")

	for _, tc := range []struct {
		name, desc string
		want       error
		msg        string
	}{
		{"", "", ErrInvalidName, "the name is empty"},
		{"  \t ", "", ErrInvalidName, "the name is empty"},
		{strings.Repeat("n", 129), "", ErrInvalidName, "at most 128"},
		{"bad\x00name", "", ErrInvalidName, "control characters"},
		{"bad\xffname", "", ErrInvalidName, "invalid UTF-8"},
		{"ok", strings.Repeat("d", 1025), ErrInvalidDescription, "at most 1024"},
		{"ok", "bell\a", ErrInvalidDescription, "control characters"},
	} {
		_, _, err := s.CreateAccount(tc.name, tc.desc)
		assert.ErrorIs(t, err, tc.want, "name %q", tc.name)
		assert.ErrorContains(t, err, tc.msg)
	}
	_, a, err := s.CreateAccount("Ünïcode name ✓", "line one\nline two\twith tab")
	require.NoError(t, err)
	assert.Equal(t, "Ünïcode name ✓", a.Name)

	for _, tc := range []struct {
		id, ws string
		role   Role
		want   error
		msg    string
	}{
		{acct.ID, "", Viewer, ErrInvalidWorkspace, "the workspace name is empty"},
		{acct.ID, "ads prod", Viewer, ErrInvalidWorkspace, "only letters, digits, '_' and '-'"},
		{acct.ID, "ads/prod", Viewer, ErrInvalidWorkspace, `"ads/prod"`},
		{acct.ID, "ädS", Viewer, ErrInvalidWorkspace, "only letters"},
		{acct.ID, strings.Repeat("w", 129), Viewer, ErrInvalidWorkspace, "at most 128"},
		{acct.ID, "ads", 0, ErrInvalidRole, "Role(0)"},
		{acct.ID, "ads", Owner + 1, ErrInvalidRole, "want viewer, editor or owner"},
		{"", "ads", Viewer, ErrNoSuchAccount, "16 lowercase hex"},
		{"not-an-id", "ads", Viewer, ErrNoSuchAccount, "16 lowercase hex"},
		{"0123456789ABCDEF", "ads", Viewer, ErrNoSuchAccount, "16 lowercase hex"},
		{"0123456789abcdef", "ads", Viewer, ErrNoSuchAccount, "does not exist or was deleted"},
	} {
		err := s.AssignRole(tc.id, tc.ws, tc.role)
		assert.ErrorIs(t, err, tc.want, "id %q ws %q", tc.id, tc.ws)
		assert.ErrorContains(t, err, tc.msg)
	}
	require.NoError(t, s.AssignRole(acct.ID, "Ads_prod-2", Owner))

	_, err = OpenStore("")
	assert.Error(t, err)

	// Nothing invalid reached the file.
	s2, err := OpenStore(path)
	require.NoError(t, err)
	assert.Len(t, s2.Accounts(), 2)
}

func TestFailedWriteChangesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.Mkdir(dir, 0o755))
	s, err := OpenStore(filepath.Join(dir, "accounts.json"))
	require.NoError(t, err)
	key, acct := mustCreate(t, s, "svc")
	require.NoError(t, os.RemoveAll(dir)) // every later write fails

	_, _, err = s.CreateAccount("other", "")
	require.Error(t, err)
	assert.ErrorContains(t, err, "auth: write account store")
	assert.Len(t, s.Accounts(), 1)
	require.Error(t, s.AssignRole(acct.ID, "ads", Owner))
	require.Error(t, s.DeleteAccount(acct.ID))
	p, err := s.Authenticate(key)
	require.NoError(t, err, "a failed delete does not revoke")
	assert.False(t, p.Allowed("ads", Viewer), "a failed assign grants nothing")
}

func TestUncertainStoreRefusesMutationsUntilReload(t *testing.T) {
	s, _ := openTemp(t)
	_, acct := mustCreate(t, s, "svc")
	s.mu.uncertain = fmt.Errorf("fsync directory: injected")

	err := s.AssignRole(acct.ID, "ads", Owner)
	assert.ErrorIs(t, err, ErrStoreUncertain)
	assert.ErrorContains(t, err, "injected")
	_, _, err = s.CreateAccount("x", "")
	assert.ErrorIs(t, err, ErrStoreUncertain)
	assert.ErrorIs(t, s.DeleteAccount(acct.ID), ErrStoreUncertain)

	require.NoError(t, s.Reload())
	require.NoError(t, s.AssignRole(acct.ID, "ads", Owner))
}

// TestAccountRecords: an account made as a record and put into two
// stores authenticates in both, with the roles of the latest record put;
// a record read again writes nothing new; Remove revokes it; a damaged
// record is refused and changes nothing.
func TestAccountRecords(t *testing.T) {
	a, err := OpenStore(filepath.Join(t.TempDir(), "accounts.json"))
	require.NoError(t, err)
	b, err := OpenStore(filepath.Join(t.TempDir(), "accounts.json"))
	require.NoError(t, err)
	key, acct, rec, err := NewAccountRecord("ingest", "made once, put twice")
	require.NoError(t, err)
	for _, s := range []*Store{a, b} {
		got, err := s.Put(rec)
		require.NoError(t, err)
		require.Equal(t, acct, got)
		p, err := s.Authenticate(key)
		require.NoError(t, err)
		require.Equal(t, acct.ID, p.AccountID)
		require.False(t, p.Allowed("ads", Viewer))
	}
	rec2, err := a.RecordWithRole(acct.ID, "ads", Owner)
	require.NoError(t, err)
	_, err = a.RecordWithRole("0123456789abcdef", "ads", Owner)
	require.ErrorIs(t, err, ErrNoSuchAccount)
	_, err = a.RecordWithRole(acct.ID, "ads", Role(9))
	require.ErrorIs(t, err, ErrInvalidRole)
	for _, s := range []*Store{b, a, b} {
		_, err := s.Put(rec2)
		require.NoError(t, err)
		p, err := s.Authenticate(key)
		require.NoError(t, err)
		require.True(t, p.Allowed("ads", Owner))
	}
	reopened, err := OpenStore(b.Path())
	require.NoError(t, err)
	got, ok := reopened.Account(acct.ID)
	require.True(t, ok)
	require.Equal(t, Owner, got.Roles["ads"])

	_, err = a.Put([]byte(`{"id": "nothex", "name": "x"}`))
	require.Error(t, err)
	_, err = a.Put([]byte(`{"id": `))
	require.Error(t, err)
	require.Len(t, a.Accounts(), 1)

	require.NoError(t, a.Remove(acct.ID))
	require.NoError(t, a.Remove(acct.ID), "removing what is gone is not an error: records are read again")
	_, err = a.Authenticate(key)
	require.ErrorIs(t, err, ErrUnauthenticated)
	_, _, _, err = NewAccountRecord("", "")
	require.ErrorIs(t, err, ErrInvalidName)
}
