package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
)

// API key layout (72 ASCII characters):
//
//	fl_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstu
//	└┬┘└──────┬───────┘ └─────────────────────────┬──────────────────────────┘
//	prefix  account ID (16 lowercase hex)   secret: 32 random bytes, base32
//	                                        (lowercase, no padding, 52 chars)
//
// Only SHA-256(whole key) is stored. The account ID is in the key so that
// Authenticate finds the account with one map lookup instead of hashing
// against every account. Part of the key format; do not change.
const (
	keyPrefix   = "fl_"
	idLen       = 16 // hex characters (8 random bytes)
	secretBytes = 32
	secretLen   = 52 // base32 characters for secretBytes
	keyLen      = len(keyPrefix) + idLen + 1 + secretLen
)

var secretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// keyHash is the SHA-256 of a whole API key, the only form stored.
type keyHash [sha256.Size]byte

// dummyHash is what Authenticate compares against when the account does
// not exist, so that an unknown ID costs the same as a wrong secret. No key
// hashes to it in practice, and a miss is rejected regardless.
var dummyHash = keyHash(sha256.Sum256([]byte("featurelog: no such account")))

// newAccountID returns 16 random lowercase hex characters.
func newAccountID() (string, error) {
	var b [idLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: generate account ID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// newKey returns a fresh API key for account id.
func newKey(id string) (string, error) {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: generate API key: %w", err)
	}
	return keyPrefix + id + "_" + secretEncoding.EncodeToString(b[:]), nil
}

// keyAccountID returns the account ID inside key, or false if key does not
// have the API key layout. It does not allocate: the ID is a substring.
func keyAccountID(key string) (string, bool) {
	if len(key) != keyLen || key[:len(keyPrefix)] != keyPrefix || key[len(keyPrefix)+idLen] != '_' {
		return "", false
	}
	id := key[len(keyPrefix) : len(keyPrefix)+idLen]
	if !validAccountID(id) {
		return "", false
	}
	for i := len(keyPrefix) + idLen + 1; i < len(key); i++ {
		if c := key[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return "", false
		}
	}
	return id, true
}

// hashKey returns SHA-256 of key. key must have length keyLen; copying it
// into an array first keeps the hash free of heap allocations.
func hashKey(key string) keyHash {
	var buf [keyLen]byte
	copy(buf[:], key)
	return sha256.Sum256(buf[:])
}

// validAccountID reports whether id is 16 lowercase hex characters.
func validAccountID(id string) bool {
	return len(id) == idLen && isLowerHex(id)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
