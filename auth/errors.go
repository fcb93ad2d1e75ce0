package auth

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is: most are returned wrapped with
// a detail saying what was wrong and what to do.
var (
	// ErrUnauthenticated: the API key is unknown, revoked or not an API key
	// at all (HTTP 401). Deliberately does not say which.
	ErrUnauthenticated = errors.New("auth: invalid or revoked API key")
	// ErrNoCredentials: the request carries no Authorization header (401).
	ErrNoCredentials = errors.New(`auth: no API key: send the header "Authorization: Tecton-key <api key>"`)
	// ErrMalformedAuthorization: the Authorization header is not
	// "Tecton-key <api key>" or "Bearer <api key>" (401).
	ErrMalformedAuthorization = errors.New("auth: malformed Authorization header")
	// ErrNoSuchAccount: no service account has the given ID.
	ErrNoSuchAccount = errors.New("auth: no such service account")
	// ErrInvalidName: a service account name is empty or unprintable.
	ErrInvalidName = errors.New("auth: invalid service account name")
	// ErrInvalidDescription: a description is too long or unprintable.
	ErrInvalidDescription = errors.New("auth: invalid service account description")
	// ErrInvalidWorkspace: a workspace name is empty or has characters other
	// than letters, digits, '_' and '-'.
	ErrInvalidWorkspace = errors.New("auth: invalid workspace name")
	// ErrInvalidRole: a role is not viewer, editor or owner.
	ErrInvalidRole = errors.New("auth: invalid role")
	// ErrCorruptStore is matched by every *CorruptStoreError.
	ErrCorruptStore = errors.New("auth: account store is corrupt")
	// ErrUnsupportedVersion: the account store was written by a newer
	// featurelog with a format this build cannot read.
	ErrUnsupportedVersion = errors.New("auth: unsupported account store version")
	// ErrStoreUncertain: an earlier write failed after the new file had
	// replaced the old one, so memory and disk may disagree. Mutations are
	// refused until Reload succeeds (or the process restarts).
	ErrStoreUncertain = errors.New("auth: account store state uncertain after a failed write; reload or restart")
)

// CorruptStoreError reports an account store file that cannot be decoded or
// fails validation. Find it with errors.As; it also matches ErrCorruptStore.
type CorruptStoreError struct {
	// Path is the account store file.
	Path string
	// Err says what is wrong, with the byte offset for JSON syntax errors.
	Err error
}

func (e *CorruptStoreError) Error() string {
	return fmt.Sprintf("auth: account store %s is corrupt: %v; restore it from a backup, "+
		"or move it aside to start with no service accounts (every existing API key then stops working)",
		e.Path, e.Err)
}

func (e *CorruptStoreError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCorruptStore) true for a *CorruptStoreError.
func (e *CorruptStoreError) Is(target error) bool { return target == ErrCorruptStore }
