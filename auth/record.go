package auth

import (
	"encoding/hex"
	"fmt"
	"maps"
	"time"

	"github.com/go-json-experiment/json/v1"
)

// Account records: one account as the store file keeps it (an element of
// "accounts" in docs/format/accounts.md: its fields and the SHA-256 of its
// key, never the key). Cluster mode replicates accounts as records, so
// that a key created through one node authenticates on every node: each
// node puts every record into its own store.

// NewAccountRecord makes a new account with no roles, its API key and its
// record, storing nothing: the key is returned only here.
func NewAccountRecord(name, description string) (apiKey string, acct Account, record []byte, err error) {
	if name, err = cleanName(name); err != nil {
		return "", Account{}, nil, err
	}
	if description, err = cleanDescription(description); err != nil {
		return "", Account{}, nil, err
	}
	id, err := newAccountID()
	if err != nil {
		return "", Account{}, nil, err
	}
	if apiKey, err = newKey(id); err != nil {
		return "", Account{}, nil, err
	}
	e := &entry{acct: Account{ID: id, Name: name, Description: description, CreatedAt: time.Now().UTC().Round(0), Roles: map[string]Role{}},
		hash: hashKey(apiKey)}
	return apiKey, e.acct.clone(), e.record(), nil
}

func (e *entry) record() []byte {
	b, err := json.Marshal(fileAccount{ID: e.acct.ID, Name: e.acct.Name, Description: e.acct.Description,
		CreatedAt: e.acct.CreatedAt, KeySHA256: hex.EncodeToString(e.hash[:]), Roles: e.acct.Roles})
	if err != nil {
		panic("BUG: auth: encode an account record: " + err.Error()) // only valid roles reach an entry
	}
	return b
}

// RecordWithRole returns the record of account id with role in workspace
// (replacing any role it had there), storing nothing.
func (s *Store) RecordWithRole(id, workspace string, role Role) ([]byte, error) {
	if err := checkWorkspace(workspace); err != nil {
		return nil, err
	}
	if err := checkRole(role); err != nil {
		return nil, err
	}
	cur := s.snap.Load().accounts[id]
	if cur == nil {
		return nil, noSuchAccount(id)
	}
	e := &entry{acct: cur.acct.clone(), hash: cur.hash}
	e.acct.Roles[workspace] = role
	return e.record(), nil
}

// Put stores an account record, replacing the account with its ID, and
// returns the account. A record that does not decode or validate is
// refused and changes nothing.
func (s *Store) Put(record []byte) (Account, error) {
	var fa fileAccount
	if err := json.Unmarshal(record, &fa); err != nil {
		return Account{}, fmt.Errorf("auth: an account record: %w", describeJSONError(err))
	}
	e, err := fa.entry()
	if err != nil {
		return Account{}, fmt.Errorf("auth: account record %q: %w", fa.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.writableLocked()
	if err != nil {
		return Account{}, err
	}
	if cur := old.accounts[e.acct.ID]; cur != nil && cur.hash == e.hash && cur.acct.Name == e.acct.Name &&
		cur.acct.Description == e.acct.Description && cur.acct.CreatedAt.Equal(e.acct.CreatedAt) && maps.Equal(cur.acct.Roles, e.acct.Roles) {
		return e.acct.clone(), nil // read again: nothing to write
	}
	if err := s.commitLocked(old.with(e)); err != nil {
		return Account{}, err
	}
	return e.acct.clone(), nil
}

// Remove deletes account id if the store has it; its key is revoked once
// Remove returns.
func (s *Store) Remove(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.writableLocked()
	if err != nil {
		return err
	}
	if old.accounts[id] == nil {
		return nil
	}
	next := &snapshot{accounts: maps.Clone(old.accounts)}
	delete(next.accounts, id)
	return s.commitLocked(next)
}
