package auth

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRole(t *testing.T) {
	for s, want := range map[string]Role{"viewer": Viewer, "editor": Editor, "owner": Owner, "Owner": Owner, "EDITOR": Editor} {
		got, err := ParseRole(s)
		require.NoError(t, err, s)
		assert.Equal(t, want, got, s)
	}
	for _, s := range []string{"", "admin", " owner", "owners", "0", "1"} {
		_, err := ParseRole(s)
		require.ErrorIs(t, err, ErrInvalidRole, s)
		assert.ErrorContains(t, err, "want viewer, editor or owner")
	}
	assert.Equal(t, "viewer", Viewer.String())
	assert.Equal(t, "editor", Editor.String())
	assert.Equal(t, "owner", Owner.String())
	assert.Equal(t, "Role(0)", Role(0).String())
	assert.Equal(t, "Role(9)", Role(9).String())
	for r := Viewer; r <= Owner; r++ {
		back, err := ParseRole(r.String())
		require.NoError(t, err)
		assert.Equal(t, r, back)
	}
}

func TestRoleJSON(t *testing.T) {
	b, err := json.Marshal(map[string]Role{"ads": Editor})
	require.NoError(t, err)
	assert.JSONEq(t, `{"ads": "editor"}`, string(b))
	var m map[string]Role
	require.NoError(t, json.Unmarshal([]byte(`{"a": "owner", "b": "viewer"}`), &m))
	assert.Equal(t, map[string]Role{"a": Owner, "b": Viewer}, m)
	assert.ErrorIs(t, json.Unmarshal([]byte(`{"a": "root"}`), &m), ErrInvalidRole)
	_, err = json.Marshal(Role(0))
	assert.ErrorIs(t, err, ErrInvalidRole)
}

// TestRoleOrdering checks the SPEC §8 permission table against a naive
// model: what each role may do, listed by hand.
func TestRoleOrdering(t *testing.T) {
	const (
		read   = Viewer // what an action needs
		ingest = Editor
		apply  = Owner
	)
	mayDo := map[Role][]Role{ // role → actions it may perform
		Viewer: {read},
		Editor: {read, ingest},
		Owner:  {read, ingest, apply},
	}
	for have, allowed := range mayDo {
		p := Principal{AccountID: "x", roles: map[string]Role{"A": have}}
		for _, need := range []Role{read, ingest, apply} {
			want := false
			for _, a := range allowed {
				want = want || a == need
			}
			assert.Equal(t, want, p.Allowed("A", need), "%s doing something that needs %s", have, need)
			assert.False(t, p.Allowed("B", need), "%s of A has nothing in B", have)
		}
		r, ok := p.Role("A")
		assert.True(t, ok)
		assert.Equal(t, have, r)
		_, ok = p.Role("B")
		assert.False(t, ok)
		assert.Equal(t, have == Owner, p.IsOwnerSomewhere())
		assert.False(t, p.Allowed("A", 0), "an invalid need is never allowed")
		assert.False(t, p.Allowed("A", Owner+1))
	}
	var zero Principal
	assert.False(t, zero.Allowed("A", Viewer))
	assert.False(t, zero.IsOwnerSomewhere())
}

func TestRolesArePerWorkspace(t *testing.T) {
	s, _ := openTemp(t)
	key, acct := mustCreate(t, s, "svc")
	require.NoError(t, s.AssignRole(acct.ID, "A", Owner))
	require.NoError(t, s.AssignRole(acct.ID, "C", Viewer))
	p, err := s.Authenticate(key)
	require.NoError(t, err)
	assert.True(t, p.Allowed("A", Owner))
	assert.False(t, p.Allowed("B", Viewer))
	assert.False(t, p.Allowed("a", Viewer), "workspace names are case-sensitive")
	assert.True(t, p.Allowed("C", Viewer))
	assert.False(t, p.Allowed("C", Editor))
	assert.True(t, p.IsOwnerSomewhere())

	key2, acct2 := mustCreate(t, s, "svc2")
	require.NoError(t, s.AssignRole(acct2.ID, "A", Editor))
	p2, err := s.Authenticate(key2)
	require.NoError(t, err)
	assert.False(t, p2.IsOwnerSomewhere())
}
