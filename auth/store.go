package auth

import (
	"cmp"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Account is a service account. Values returned by the Store are copies;
// changing them changes nothing in the store.
type Account struct {
	// ID is 16 lowercase hex characters, random, unique in the store.
	ID string
	// Name is what the account is for, e.g. "ads-ingest"; not unique.
	Name string
	// Description is free text; may be empty.
	Description string
	// CreatedAt is when the account was created, in UTC.
	CreatedAt time.Time
	// Roles maps workspace name → role. Never nil in returned values.
	Roles map[string]Role
}

// Store holds the service accounts of one data directory, persisted to one
// JSON file (see the package doc for its layout).
//
// Concurrency: readers (Authenticate, Account, Accounts) load an immutable
// snapshot through an atomic pointer and never lock. Writers (mutations and
// Reload) serialize on mu, write the file while holding it, and publish the
// new snapshot only after the file is durable. Readers never wait for I/O.
type Store struct {
	// path is the account store file.
	path string
	// snap is the current state. A published snapshot, its entries and
	// their Roles maps are never modified again.
	snap atomic.Pointer[snapshot]

	mu struct {
		// Mutex serializes writers. Readers never take it.
		sync.Mutex
		// uncertain is set when a write failed after the rename, so disk
		// may be ahead of snap; mutations are refused until Reload.
		uncertain error
	}
}

// snapshot is an immutable view of all accounts.
type snapshot struct {
	accounts map[string]*entry // by account ID
}

// entry is one account and the hash of its key. Immutable once published.
type entry struct {
	acct Account
	hash keyHash
}

// OpenStore opens the account store at path (normally <data>/accounts.json).
// A missing file is an empty store; the file is created by the first
// change. A file that cannot be decoded gives a *CorruptStoreError naming
// it.
func OpenStore(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("auth: empty account store path")
	}
	snap, err := loadFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path}
	s.snap.Store(snap)
	return s, nil
}

// Path returns the account store file.
func (s *Store) Path() string { return s.path }

// Reload re-reads the file, for when another process (the CLI, while no
// server held the data directory) may have changed it. On error the store
// keeps its current state.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := loadFile(s.path)
	if err != nil {
		return err
	}
	s.snap.Store(snap)
	s.mu.uncertain = nil
	return nil
}

// CreateAccount creates a service account with no roles and returns its
// API key. The key is returned only here: the store keeps only its hash.
func (s *Store) CreateAccount(name, description string) (apiKey string, acct Account, err error) {
	if name, err = cleanName(name); err != nil {
		return "", Account{}, err
	}
	if description, err = cleanDescription(description); err != nil {
		return "", Account{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.writableLocked()
	if err != nil {
		return "", Account{}, err
	}
	id, err := unusedIDLocked(old)
	if err != nil {
		return "", Account{}, err
	}
	if apiKey, err = newKey(id); err != nil {
		return "", Account{}, err
	}
	e := &entry{
		acct: Account{ID: id, Name: name, Description: description,
			CreatedAt: time.Now().UTC().Round(0), Roles: map[string]Role{}},
		hash: hashKey(apiKey),
	}
	if err := s.commitLocked(old.with(e)); err != nil {
		return "", Account{}, err
	}
	return apiKey, e.acct.clone(), nil
}

// DeleteAccount deletes a service account. Its key is revoked as soon as
// DeleteAccount returns: every later Authenticate of it fails.
func (s *Store) DeleteAccount(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.writableLocked()
	if err != nil {
		return err
	}
	if old.accounts[id] == nil {
		return noSuchAccount(id)
	}
	next := &snapshot{accounts: maps.Clone(old.accounts)}
	delete(next.accounts, id)
	return s.commitLocked(next)
}

// AssignRole gives account id the role in workspace, replacing any role it
// had there (so it can also lower a role).
func (s *Store) AssignRole(id, workspace string, role Role) error {
	if err := checkWorkspace(workspace); err != nil {
		return err
	}
	if err := checkRole(role); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.writableLocked()
	if err != nil {
		return err
	}
	cur := old.accounts[id]
	if cur == nil {
		return noSuchAccount(id)
	}
	if r, ok := cur.acct.Roles[workspace]; ok && r == role {
		return nil
	}
	e := &entry{acct: cur.acct.clone(), hash: cur.hash}
	e.acct.Roles[workspace] = role
	return s.commitLocked(old.with(e))
}

// Account returns a copy of account id.
func (s *Store) Account(id string) (Account, bool) {
	e := s.snap.Load().accounts[id]
	if e == nil {
		return Account{}, false
	}
	return e.acct.clone(), true
}

// Accounts returns copies of all accounts, oldest first (by CreatedAt, then
// ID).
func (s *Store) Accounts() []Account {
	return s.snap.Load().sorted()
}

// Authenticate returns the principal an API key stands for, or an error
// matching ErrUnauthenticated if the key is unknown, revoked or malformed.
// It takes no lock and makes no allocation.
//
// The presented key is hashed and compared in constant time even when its
// account ID is unknown (against a dummy hash), so response times do not
// reveal which account IDs exist. Keys that do not have the API key layout
// are rejected early: the layout is public, so that leaks nothing.
func (s *Store) Authenticate(apiKey string) (Principal, error) {
	id, ok := keyAccountID(apiKey)
	if !ok {
		return Principal{}, errMalformedKey
	}
	got := hashKey(apiKey)
	e := s.snap.Load().accounts[id]
	want := &dummyHash
	if e != nil {
		want = &e.hash
	}
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || e == nil {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{AccountID: e.acct.ID, roles: e.acct.Roles}, nil
}

// errMalformedKey is returned for strings that are not API keys at all.
// Built once so that Authenticate does not allocate on failure either.
var errMalformedKey = fmt.Errorf("%w: not an API key (keys look like fl_<16 hex digits>_<52 letters and digits>; "+
	"was it cut short when copied?)", ErrUnauthenticated)

// writableLocked returns the current snapshot, or an error if an earlier
// failed write left the store uncertain.
func (s *Store) writableLocked() (*snapshot, error) {
	if s.mu.uncertain != nil {
		return nil, fmt.Errorf("%w: %v", ErrStoreUncertain, s.mu.uncertain)
	}
	return s.snap.Load(), nil
}

// commitLocked makes next durable, then publishes it. If the write failed
// after the new file replaced the old one, the store becomes uncertain.
func (s *Store) commitLocked(next *snapshot) error {
	replaced, err := writeFileAtomic(s.path, encodeSnapshot(next))
	if err != nil {
		if replaced {
			s.mu.uncertain = err
		}
		return err
	}
	s.snap.Store(next)
	return nil
}

// unusedIDLocked draws account IDs until one is not taken (2^64 of them:
// a retry is practically never needed).
func unusedIDLocked(snap *snapshot) (string, error) {
	for {
		id, err := newAccountID()
		if err != nil || snap.accounts[id] == nil {
			return id, err
		}
	}
}

// with returns a copy of snap in which e replaces the account with its ID.
func (snap *snapshot) with(e *entry) *snapshot {
	next := &snapshot{accounts: maps.Clone(snap.accounts)}
	if next.accounts == nil {
		next.accounts = make(map[string]*entry, 1)
	}
	next.accounts[e.acct.ID] = e
	return next
}

// sorted returns copies of the accounts ordered by CreatedAt, then ID.
func (snap *snapshot) sorted() []Account {
	out := make([]Account, 0, len(snap.accounts))
	for _, e := range snap.accounts {
		out = append(out, e.acct.clone())
	}
	slices.SortFunc(out, func(a, b Account) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// clone returns a deep copy of a, with a non-nil Roles map.
func (a Account) clone() Account {
	roles := make(map[string]Role, len(a.Roles))
	maps.Copy(roles, a.Roles)
	a.Roles = roles
	return a
}
