package auth

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Input limits. Generous for people, small enough that the account store
// stays a small file.
const (
	maxNameLen        = 128  // bytes
	maxDescriptionLen = 1024 // bytes
	maxWorkspaceLen   = 128  // bytes
)

// cleanName trims and validates a service account name.
func cleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", fmt.Errorf("%w: the name is empty; give one with --name", ErrInvalidName)
	case len(name) > maxNameLen:
		return "", fmt.Errorf("%w: the name is %d bytes long; at most %d are allowed", ErrInvalidName, len(name), maxNameLen)
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		return "", fmt.Errorf("%w %q: it contains control characters or invalid UTF-8", ErrInvalidName, name)
	}
	return name, nil
}

// cleanDescription trims and validates a description; it may be empty and
// may span lines.
func cleanDescription(d string) (string, error) {
	d = strings.TrimSpace(d)
	switch {
	case len(d) > maxDescriptionLen:
		return "", fmt.Errorf("%w: the description is %d bytes long; at most %d are allowed",
			ErrInvalidDescription, len(d), maxDescriptionLen)
	case !utf8.ValidString(d) || strings.ContainsFunc(d, isControlExceptNewlineTab):
		return "", fmt.Errorf("%w: it contains control characters or invalid UTF-8", ErrInvalidDescription)
	}
	return d, nil
}

func isControlExceptNewlineTab(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }

// checkWorkspace validates a workspace name: 1 to 128 ASCII letters,
// digits, '_' and '-'.
func checkWorkspace(ws string) error {
	switch {
	case ws == "":
		return fmt.Errorf("%w: the workspace name is empty", ErrInvalidWorkspace)
	case len(ws) > maxWorkspaceLen:
		return fmt.Errorf("%w: the name is %d bytes long; at most %d are allowed", ErrInvalidWorkspace, len(ws), maxWorkspaceLen)
	}
	for i := 0; i < len(ws); i++ {
		if c := ws[i]; !isWorkspaceByte(c) {
			return fmt.Errorf("%w %q: only letters, digits, '_' and '-' are allowed", ErrInvalidWorkspace, ws)
		}
	}
	return nil
}

func isWorkspaceByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// checkRole validates a role given to AssignRole.
func checkRole(r Role) error {
	if !r.valid() {
		return fmt.Errorf("%w %s: want viewer, editor or owner", ErrInvalidRole, r)
	}
	return nil
}

// noSuchAccount explains why id names no account.
func noSuchAccount(id string) error {
	if !validAccountID(id) {
		return fmt.Errorf("%w %q: IDs are 16 lowercase hex characters, as printed by "+
			"\"featurelog service-account create\"", ErrNoSuchAccount, id)
	}
	return fmt.Errorf("%w %q: it does not exist or was deleted", ErrNoSuchAccount, id)
}
