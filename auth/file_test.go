package auth

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/docgolden"
)

const (
	goodID   = "3f9c2a7d1b0e4c85"
	goodHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// account renders one account object of the store file with overrides.
func account(fields ...string) string {
	f := map[string]string{
		"id": `"` + goodID + `"`, "name": `"svc"`, "created_at": `"2026-11-21T05:00:00Z"`,
		"key_sha256": `"` + goodHash + `"`, "roles": `{"ads": "editor"}`,
	}
	order := []string{"id", "name", "created_at", "key_sha256", "roles"}
	for i := 0; i+1 < len(fields); i += 2 {
		if _, ok := f[fields[i]]; !ok {
			order = append(order, fields[i])
		}
		f[fields[i]] = fields[i+1]
	}
	var parts []string
	for _, k := range order {
		if v := f[k]; v != "-" {
			parts = append(parts, `"`+k+`": `+v)
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func storeFile(accounts ...string) string {
	return `{"version": 1, "accounts": [` + strings.Join(accounts, ", ") + `]}`
}

func TestValidStoreFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.json")
	require.NoError(t, os.WriteFile(path, []byte(storeFile(account(), account("id", `"00000000000000aa"`, "roles", "-"))), 0o600))
	s, err := OpenStore(path)
	require.NoError(t, err)
	all := s.Accounts()
	require.Len(t, all, 2)
	assert.Equal(t, "00000000000000aa", all[0].ID, "same CreatedAt: sorted by ID")
	assert.Equal(t, map[string]Role{"ads": Editor}, all[1].Roles)
	assert.NotNil(t, all[0].Roles)
}

func TestCorruptStoreFile(t *testing.T) {
	for _, tc := range []struct {
		name, content, msg string
	}{
		{"empty", "", "the file is empty"},
		{"whitespace", " \n", "the file is empty"},
		{"not_json", "hello", "invalid JSON at byte 1"},
		{"truncated", storeFile(account())[:40], "the file is truncated"},
		{"array", "[]", "wrong JSON type"},
		{"trailing_data", storeFile() + "{}", "unexpected data after the JSON object"},
		{"unknown_top_field", `{"version": 1, "accounts": [], "keys": []}`, `unknown field "keys"`},
		{"unknown_account_field", storeFile(account("api_key", `"fl_x"`)), `unknown field "api_key"`},
		{"no_version", `{"accounts": []}`, `no "version" field`},
		{"bad_id", storeFile(account("id", `"XYZ"`)), "not 16 lowercase hex"},
		{"duplicate_id", storeFile(account(), account()), `duplicate id "` + goodID + `"`},
		{"empty_name", storeFile(account("name", `""`)), "bad name"},
		{"untrimmed_name", storeFile(account("name", `" svc"`)), "bad name"},
		{"no_created_at", storeFile(account("created_at", "-")), `no "created_at"`},
		{"bad_created_at", storeFile(account("created_at", `"yesterday"`)), "cannot parse"},
		{"short_hash", storeFile(account("key_sha256", `"abcd"`)), "not 64 lowercase hex"},
		{"non_hex_hash", storeFile(account("key_sha256", `"`+strings.Repeat("zz", 32)+`"`)), "not 64 lowercase hex"},
		{"upper_hash", storeFile(account("key_sha256", `"`+strings.ToUpper(goodHash)+`"`)), "not 64 lowercase hex"},
		{"long_hash", storeFile(account("key_sha256", `"`+goodHash+`00"`)), "not 64 lowercase hex"},
		{"bad_role", storeFile(account("roles", `{"ads": "admin"}`)), `invalid role "admin"`},
		{"null_role", storeFile(account("roles", `{"ads": null}`)), "invalid role Role(0)"},
		{"numeric_role", storeFile(account("roles", `{"ads": 2}`)), "wrong JSON type"},
		{"bad_workspace", storeFile(account("roles", `{"a b": "owner"}`)), "invalid workspace name"},
		{"accounts_not_array", `{"version": 1, "accounts": {}}`, "wrong JSON type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "accounts.json")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			s, err := OpenStore(path)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.ErrorIs(t, err, ErrCorruptStore)
			var ce *CorruptStoreError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, path, ce.Path)
			assert.Contains(t, err.Error(), "auth: account store "+path+" is corrupt: ")
			assert.Contains(t, err.Error(), tc.msg)
			assert.Contains(t, err.Error(), "restore it from a backup")
		})
	}
}

func TestNewerStoreVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"version": 2, "accounts": []}`), 0o600))
	_, err := OpenStore(path)
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	assert.NotErrorIs(t, err, ErrCorruptStore)
	assert.ErrorContains(t, err, path)
	assert.ErrorContains(t, err, "use a newer featurelog")
}

func TestUnreadableStoreFile(t *testing.T) {
	dir := t.TempDir() // a directory where the file should be
	_, err := OpenStore(dir)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrCorruptStore)
	assert.ErrorContains(t, err, dir)
}

// TestAccountsFileGolden pins docs/format/accounts.md: the page's example
// is what encodeSnapshot writes for its two accounts, it opens as a store
// holding them, the page's example key authenticates against it (the hash
// is of the whole key), and the page documents every field of the file.
func TestAccountsFileGolden(t *testing.T) {
	exampleKey := "fl_3f9c2a7d1b0e4c85_aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq"
	var secret [secretBytes]byte
	for i := range secret {
		secret[i] = byte(i)
	}
	require.Equal(t, keyPrefix+"3f9c2a7d1b0e4c85_"+secretEncoding.EncodeToString(secret[:]), exampleKey)
	other, err := hex.DecodeString("c4b0c2a1b2be3c37d556259d9f7ab0723a31a4c15ca1f2c515cf85ef982388c2")
	require.NoError(t, err)
	want := []Account{
		{ID: "3f9c2a7d1b0e4c85", Name: "ads-ingest", Description: "writes impressions",
			CreatedAt: time.Date(2026, 11, 21, 5, 0, 0, 123456789, time.UTC), Roles: map[string]Role{"ads": Editor, "fraud": Viewer}},
		{ID: "a01b2c3d4e5f6071", Name: "ci", CreatedAt: time.Date(2026, 11, 22, 8, 30, 0, 0, time.UTC), Roles: map[string]Role{}},
	}
	snap := &snapshot{accounts: map[string]*entry{
		want[0].ID: {acct: want[0], hash: hashKey(exampleKey)},
		want[1].ID: {acct: want[1], hash: keyHash(other)},
	}}
	page := docgolden.Block(t, "accounts.md", "accounts")
	require.Equal(t, page, string(encodeSnapshot(snap)))

	path := filepath.Join(t.TempDir(), "accounts.json")
	_, err = writeFileAtomic(path, []byte(page))
	require.NoError(t, err)
	s, err := OpenStore(path)
	require.NoError(t, err)
	assert.Equal(t, want, s.Accounts())
	p, err := s.Authenticate(exampleKey)
	require.NoError(t, err)
	assert.Equal(t, "3f9c2a7d1b0e4c85", p.AccountID)
	assert.True(t, p.Allowed("ads", Editor))
	assert.False(t, p.Allowed("ads", Owner))
	docgolden.Fields(t, "accounts.md", reflect.TypeFor[fileStore]())
}
