package auth

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// benchStore returns a store holding n accounts (built in memory: creating
// them through CreateAccount would rewrite the file n times) and the key of
// one of them.
func benchStore(b *testing.B, n int) (*Store, string) {
	b.Helper()
	s, err := OpenStore(filepath.Join(b.TempDir(), "accounts.json"))
	if err != nil {
		b.Fatal(err)
	}
	snap := &snapshot{accounts: make(map[string]*entry, n)}
	var key string
	for i := range n {
		id, err := newAccountID()
		if err != nil {
			b.Fatal(err)
		}
		if key, err = newKey(id); err != nil {
			b.Fatal(err)
		}
		snap.accounts[id] = &entry{
			acct: Account{ID: id, Name: fmt.Sprint("svc", i), CreatedAt: time.Now(),
				Roles: map[string]Role{"ads": Editor, "fraud": Viewer}},
			hash: hashKey(key),
		}
	}
	s.snap.Store(snap)
	return s, key
}

func BenchmarkAuthenticate(b *testing.B) {
	for _, n := range []int{1, 10_000} {
		s, key := benchStore(b, n)
		unknown := "fl_" + "0000000000000000" + key[19:]
		for _, tc := range []struct {
			name, key string
			ok        bool
		}{{"valid", key, true}, {"unknown_id", unknown, false}, {"malformed", "fl_nope", false}} {
			b.Run(fmt.Sprintf("accounts=%d/%s", n, tc.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p, err := s.Authenticate(tc.key)
					if (err == nil) != tc.ok || (tc.ok && !p.Allowed("ads", Editor)) {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(fmt.Sprintf("accounts=%d/valid_parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Authenticate(key); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSHA256Key is the floor under BenchmarkAuthenticate: hashing one
// 72-byte key.
func BenchmarkSHA256Key(b *testing.B) {
	key := []byte("fl_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstu")
	b.ReportAllocs()
	for b.Loop() {
		_ = sha256.Sum256(key)
	}
}

func BenchmarkParseAuthorization(b *testing.B) {
	h := "Tecton-key fl_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstu"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAuthorization(h); err != nil {
			b.Fatal(err)
		}
	}
}
