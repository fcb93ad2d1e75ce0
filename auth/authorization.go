package auth

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The accepted Authorization schemes, matched case-insensitively.
const (
	schemeTecton = "Tecton-key"
	schemeBearer = "Bearer"
)

// ParseAuthorization extracts the API key from an HTTP Authorization header
// value: "Tecton-key <key>" or "Bearer <key>", the scheme in any case,
// separated from the key by one or more spaces. An empty header gives
// ErrNoCredentials; anything else that does not fit gives an error wrapping
// ErrMalformedAuthorization that says what is expected. Errors never echo
// the key. The key itself is not checked here; Authenticate does that.
func ParseAuthorization(header string) (apiKey string, err error) {
	h := strings.TrimSpace(header) // net/http already trims; callers may not
	if h == "" {
		return "", ErrNoCredentials
	}
	scheme, rest, found := strings.Cut(h, " ")
	if !isKnownScheme(scheme) {
		if !found {
			return "", malformed("no scheme")
		}
		return "", malformed(fmt.Sprintf("unsupported scheme %s", quoteScheme(scheme)))
	}
	key := strings.TrimLeft(rest, " ")
	switch {
	case key == "":
		return "", malformed(fmt.Sprintf("no API key after %q", scheme))
	case strings.Contains(key, " "):
		return "", malformed("more than one word after the scheme")
	case hasControlOrSpace(key):
		return "", malformed("the API key contains control or space characters")
	}
	return key, nil
}

func isKnownScheme(s string) bool {
	return strings.EqualFold(s, schemeTecton) || strings.EqualFold(s, schemeBearer)
}

func malformed(what string) error {
	return fmt.Errorf(`%w: %s; want "Tecton-key <api key>" or "Bearer <api key>"`, ErrMalformedAuthorization, what)
}

// quoteScheme quotes an unknown scheme for an error message, unless it
// might be a secret (a key pasted without a scheme): only short words of
// letters and dashes, like "Basic" or "Digest", are shown.
func quoteScheme(s string) string {
	if len(s) > 20 {
		return "(not shown)"
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && c != '-' {
			return "(not shown)"
		}
	}
	return fmt.Sprintf("%q", s)
}

// hasControlOrSpace reports whether s has a space or control character,
// ASCII or not. ASCII (every real key) takes the fast path.
func hasControlOrSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return strings.ContainsFunc(s[i:], func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
		}
		if c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}
