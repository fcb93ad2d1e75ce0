package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMalformedKeysAreUnauthenticated(t *testing.T) {
	s, _ := openTemp(t)
	key, acct := mustCreate(t, s, "svc")
	require.NoError(t, s.AssignRole(acct.ID, "ads", Owner))
	secret := key[20:]

	for _, tc := range []struct{ name, key string }{
		{"empty", ""},
		{"prefix_only", "fl_"},
		{"wrong_prefix", "fk_" + key[3:]},
		{"upper_prefix", "FL_" + key[3:]},
		{"no_prefix", key[3:]},
		{"upper_id", "fl_" + strings.ToUpper(acct.ID) + "_" + secret},
		{"non_hex_id", "fl_" + "zz" + acct.ID[2:] + "_" + secret},
		{"short_id", "fl_" + acct.ID[1:] + "_" + secret + "a"},
		{"id_separator", "fl_" + acct.ID + "-" + secret},
		{"truncated", key[:len(key)-1]},
		{"truncated_half", key[:36]},
		{"extended", key + "a"},
		{"upper_secret", key[:20] + strings.ToUpper(secret)},
		{"padding", key[:len(key)-1] + "="},
		{"leading_space", " " + key},
		{"trailing_space", key + " "},
		{"trailing_newline", key + "\n"},
		{"inner_space", key[:30] + " " + key[31:]},
		{"unicode", key[:len(key)-2] + "é"},
		{"unicode_id", "fl_" + "ä" + acct.ID[2:] + "_" + secret},
		{"nul", key[:40] + "\x00" + key[41:]},
		{"invalid_utf8", key[:40] + "\xff" + key[41:]},
		{"scheme_included", "Bearer " + key},
		{"huge", strings.Repeat("a", 1<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.Authenticate(tc.key)
			require.ErrorIs(t, err, ErrUnauthenticated)
			assert.Equal(t, Principal{}, p)
			assert.False(t, p.Allowed("ads", Viewer))
			if len(tc.key) > 8 {
				assert.NotContains(t, err.Error(), tc.key, "errors never echo the key")
			}
		})
	}
	_, err := s.Authenticate(key)
	require.NoError(t, err, "the real key still works")
}

func TestUnknownAccountIsUnauthenticated(t *testing.T) {
	s, _ := openTemp(t)
	key, acct := mustCreate(t, s, "svc")
	other := "0000000000000000"
	if acct.ID == other {
		other = "0000000000000001"
	}
	_, err := s.Authenticate("fl_" + other + key[19:])
	assert.Equal(t, ErrUnauthenticated, err, "well-formed but unknown: the plain sentinel")
	require.NoError(t, s.DeleteAccount(acct.ID))
	_, err = s.Authenticate(key)
	assert.Equal(t, ErrUnauthenticated, err, "revoked: same answer as unknown")
}

func TestKeyFormat(t *testing.T) {
	id, err := newAccountID()
	require.NoError(t, err)
	assert.Regexp(t, `^[0-9a-f]{16}$`, id)
	k, err := newKey(id)
	require.NoError(t, err)
	assert.Len(t, k, keyLen)
	assert.Equal(t, 72, keyLen)
	assert.Regexp(t, keyPattern, k)
	got, ok := keyAccountID(k)
	require.True(t, ok)
	assert.Equal(t, id, got)

	raw, err := secretEncoding.DecodeString(k[20:])
	require.NoError(t, err)
	assert.Len(t, raw, secretBytes)
}
