package auth

// Principal is an authenticated service account: who made a request and
// what it may do. The zero Principal may do nothing.
//
// A Principal is a snapshot: it keeps the roles the account had when it was
// authenticated, so one request sees one consistent set of roles even if
// they change meanwhile.
type Principal struct {
	// AccountID is the service account's ID.
	AccountID string
	// roles maps workspace → role. It is shared with the store snapshot the
	// Principal came from, which never mutates it (mutations build a new
	// map), so sharing is as safe as a copy and costs no allocation.
	roles map[string]Role
}

// Allowed reports whether the principal holds at least role need in
// workspace. An invalid need (such as the zero Role) is never allowed.
func (p Principal) Allowed(workspace string, need Role) bool {
	if !need.valid() {
		return false
	}
	have, ok := p.roles[workspace]
	return ok && have >= need
}

// Role returns the principal's role in workspace, if it has one; useful to
// say in a 403 what the key has and what it lacks.
func (p Principal) Role(workspace string) (Role, bool) {
	r, ok := p.roles[workspace]
	return r, ok
}

// IsOwnerSomewhere reports whether the principal is owner of at least one
// workspace.
func (p Principal) IsOwnerSomewhere() bool {
	for _, r := range p.roles {
		if r == Owner {
			return true
		}
	}
	return false
}
