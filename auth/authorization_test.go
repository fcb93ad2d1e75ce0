package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseAuthorization(t *testing.T) {
	const key = "fl_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstu"
	for _, tc := range []struct {
		name, header, key string
		err               error
		msg               string
	}{
		{"tecton", "Tecton-key " + key, key, nil, ""},
		{"bearer", "Bearer " + key, key, nil, ""},
		{"lower_scheme", "tecton-key " + key, key, nil, ""},
		{"upper_scheme", "BEARER " + key, key, nil, ""},
		{"mixed_scheme", "tEcToN-KeY " + key, key, nil, ""},
		{"many_spaces", "Bearer    " + key, key, nil, ""},
		{"outer_space", "  Bearer " + key + "  ", key, nil, ""},
		{"any_key_text", "Bearer abc", "abc", nil, ""}, // checked by Authenticate, not here

		{"empty", "", "", ErrNoCredentials, "Authorization: Tecton-key <api key>"},
		{"blank", "   ", "", ErrNoCredentials, ""},
		{"scheme_only", "Bearer", "", ErrMalformedAuthorization, `no API key after "Bearer"`},
		{"scheme_space", "Tecton-key   ", "", ErrMalformedAuthorization, `no API key after "Tecton-key"`},
		{"key_only", key, "", ErrMalformedAuthorization, "no scheme"},
		{"basic", "Basic xyz", "", ErrMalformedAuthorization, `unsupported scheme "Basic"`},
		{"token_scheme", "Token " + key, "", ErrMalformedAuthorization, `unsupported scheme "Token"`},
		{"scheme_without_dash", "Tecton key " + key, "", ErrMalformedAuthorization, `unsupported scheme "Tecton"`},
		{"key_as_scheme", key + " " + key, "", ErrMalformedAuthorization, "unsupported scheme (not shown)"},
		{"extra_parts", "Bearer " + key + " extra", "", ErrMalformedAuthorization, "more than one word"},
		{"two_schemes", "Bearer Tecton-key " + key, "", ErrMalformedAuthorization, "more than one word"},
		{"tab_separator", "Bearer\t" + key, "", ErrMalformedAuthorization, "no scheme"},
		{"tab_in_key", "Bearer " + key[:10] + "\t" + key[10:], "", ErrMalformedAuthorization, "control or space"},
		{"nbsp_in_key", "Bearer " + key[:10] + "\u00a0" + key[10:], "", ErrMalformedAuthorization, "control or space"},
		{"nul_in_key", "Bearer " + key[:10] + "\x00" + key[10:], "", ErrMalformedAuthorization, "control or space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAuthorization(tc.header)
			if tc.err == nil {
				require.NoError(t, err)
				assert.Equal(t, tc.key, got)
				return
			}
			require.ErrorIs(t, err, tc.err)
			assert.Empty(t, got)
			assert.Contains(t, err.Error(), tc.msg)
			if tc.err == ErrMalformedAuthorization {
				assert.Contains(t, err.Error(), `want "Tecton-key <api key>" or "Bearer <api key>"`)
			}
			assert.NotContains(t, err.Error(), key[20:], "errors never echo the key")
		})
	}
}

func TestParseAuthorizationThenAuthenticate(t *testing.T) {
	s, _ := openTemp(t)
	key, acct := mustCreate(t, s, "svc")
	require.NoError(t, s.AssignRole(acct.ID, "ads", Editor))
	for _, h := range []string{"Tecton-key " + key, "bearer  " + key} {
		k, err := ParseAuthorization(h)
		require.NoError(t, err)
		p, err := s.Authenticate(k)
		require.NoError(t, err)
		assert.True(t, p.Allowed("ads", Editor))
	}
	k, err := ParseAuthorization("Bearer " + strings.ToUpper(key))
	require.NoError(t, err)
	_, err = s.Authenticate(k)
	assert.ErrorIs(t, err, ErrUnauthenticated)
}
