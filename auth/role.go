package auth

import (
	"fmt"
	"strings"
)

// Role is what a service account may do in one workspace. Roles are
// ordered: a higher role includes everything the lower ones allow.
//
//	Viewer  read features (online and historical)
//	Editor  Viewer, plus ingest
//	Owner   Editor, plus apply, delete keys and run jobs
//
// The zero Role is not a role: it grants nothing and ParseRole never
// returns it.
type Role uint8

// The roles, in increasing order of power.
const (
	Viewer Role = iota + 1
	Editor
	Owner
)

// roleNames are the spellings used by the CLI, the API and the account
// store. Part of the on-disk format; do not change.
var roleNames = [...]string{Viewer: "viewer", Editor: "editor", Owner: "owner"}

// ParseRole parses "viewer", "editor" or "owner" (case-insensitively).
func ParseRole(s string) (Role, error) {
	for r := Viewer; r <= Owner; r++ {
		if strings.EqualFold(s, roleNames[r]) {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%w %q: want viewer, editor or owner", ErrInvalidRole, s)
}

// String returns "viewer", "editor" or "owner", or "Role(n)" for an invalid
// value.
func (r Role) String() string {
	if r.valid() {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// MarshalText encodes the role by name, so JSON shows "editor", not 2.
func (r Role) MarshalText() ([]byte, error) {
	if !r.valid() {
		return nil, fmt.Errorf("%w: %d", ErrInvalidRole, uint8(r))
	}
	return []byte(roleNames[r]), nil
}

// UnmarshalText is the inverse of MarshalText; it accepts what ParseRole
// accepts.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func (r Role) valid() bool { return r >= Viewer && r <= Owner }
