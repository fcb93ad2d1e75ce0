package auth

import (
	"errors"
	"strings"
	"testing"
	"unicode"
)

func FuzzParseAuthorization(f *testing.F) {
	const key = "fl_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstu"
	for _, s := range []string{
		"", " ", "Bearer", "Bearer ", "Tecton-key " + key, "bearer  " + key, "Basic xyz",
		key, "Bearer a b", "Bearer\t" + key, "Tecton-key \x00", "Bearer é", "\u00a0Bearer x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		got, err := ParseAuthorization(header)
		if err != nil {
			if got != "" {
				t.Fatalf("key %q returned with error %v", got, err)
			}
			noCreds := strings.TrimSpace(header) == ""
			if errors.Is(err, ErrNoCredentials) != noCreds {
				t.Fatalf("header %q: ErrNoCredentials=%v, want %v", header, !noCreds, noCreds)
			}
			if !noCreds && !errors.Is(err, ErrMalformedAuthorization) {
				t.Fatalf("header %q: unexpected error %v", header, err)
			}
			return
		}
		if got == "" || strings.ContainsFunc(got, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			t.Fatalf("header %q: bad key %q", header, got)
		}
		h := strings.TrimSpace(header)
		scheme, _, _ := strings.Cut(h, " ")
		if !strings.HasSuffix(h, got) || !isKnownScheme(scheme) {
			t.Fatalf("header %q: key %q is not what follows a known scheme", header, got)
		}
		if again, err := ParseAuthorization("Bearer " + got); err != nil || again != got {
			t.Fatalf("round trip of %q: %q, %v", got, again, err)
		}
	})
}

func FuzzAuthenticate(f *testing.F) {
	s, err := OpenStore(f.TempDir() + "/accounts.json")
	if err != nil {
		f.Fatal(err)
	}
	key, acct, err := s.CreateAccount("svc", "")
	if err != nil {
		f.Fatal(err)
	}
	if err := s.AssignRole(acct.ID, "ads", Editor); err != nil {
		f.Fatal(err)
	}
	for _, k := range []string{
		key, "", "fl_", key[:len(key)-1], key + "a", strings.ToUpper(key), " " + key,
		"fl_0000000000000000" + key[19:], key[:30] + "é" + key[32:], strings.Repeat("_", keyLen),
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		p, err := s.Authenticate(k)
		if k == key {
			if err != nil || p.AccountID != acct.ID || !p.Allowed("ads", Editor) {
				t.Fatalf("the real key failed: %v", err)
			}
			return
		}
		if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("%q: want ErrUnauthenticated, got %v", k, err)
		}
		if p.AccountID != "" || p.Allowed("ads", Viewer) {
			t.Fatalf("%q: non-empty principal %+v", k, p)
		}
	})
}
