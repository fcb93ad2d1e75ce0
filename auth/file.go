package auth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/go-json-experiment/json/v1"

	"github.com/featurelog/featurelog/internal/atomicfile"
)

// fileVersion is the account store format version written and read by this
// build. Part of the on-disk format; bump it on any incompatible change.
const fileVersion = 1

// fileStore is the JSON layout of the account store file
// (docs/format/accounts.md). Part of the on-disk format; do not change
// without bumping fileVersion.
type fileStore struct {
	Version  int           `json:"version"`
	Accounts []fileAccount `json:"accounts"`
}

type fileAccount struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	KeySHA256   string          `json:"key_sha256"` // hex SHA-256 of the whole API key
	Roles       map[string]Role `json:"roles,omitempty"`
}

// encodeSnapshot renders snap as the file content, accounts oldest first.
func encodeSnapshot(snap *snapshot) []byte {
	f := fileStore{Version: fileVersion, Accounts: make([]fileAccount, 0, len(snap.accounts))}
	for _, a := range snap.sorted() {
		h := snap.accounts[a.ID].hash
		f.Accounts = append(f.Accounts, fileAccount{ID: a.ID, Name: a.Name, Description: a.Description,
			CreatedAt: a.CreatedAt, KeySHA256: hex.EncodeToString(h[:]), Roles: a.Roles})
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		panic("BUG: auth: encode account store: " + err.Error()) // only valid roles reach a snapshot
	}
	return append(data, '\n')
}

// loadFile reads the account store at path; a missing file is empty.
func loadFile(path string) (*snapshot, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &snapshot{accounts: map[string]*entry{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: read account store: %w", err)
	}
	snap, err := decodeFile(data)
	if err != nil {
		if errors.Is(err, ErrUnsupportedVersion) {
			return nil, fmt.Errorf("auth: account store %s: %w", path, err)
		}
		return nil, &CorruptStoreError{Path: path, Err: err}
	}
	return snap, nil
}

// decodeFile parses and validates the file content.
func decodeFile(data []byte) (*snapshot, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the file is empty")
	}
	var f fileStore
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON object at byte %d", dec.InputOffset())
	}
	switch {
	case f.Version == 0:
		return nil, errors.New(`no "version" field`)
	case f.Version != fileVersion:
		return nil, fmt.Errorf("%w: format version %d, this build reads version %d; use a newer featurelog",
			ErrUnsupportedVersion, f.Version, fileVersion)
	}
	snap := &snapshot{accounts: make(map[string]*entry, len(f.Accounts))}
	for i, fa := range f.Accounts {
		e, err := fa.entry()
		if err != nil {
			return nil, fmt.Errorf("account %d (id %q): %w", i, fa.ID, err)
		}
		if snap.accounts[e.acct.ID] != nil {
			return nil, fmt.Errorf("account %d: duplicate id %q", i, fa.ID)
		}
		snap.accounts[e.acct.ID] = e
	}
	return snap, nil
}

// entry validates a decoded account and converts it.
func (fa fileAccount) entry() (*entry, error) {
	if !validAccountID(fa.ID) {
		return nil, errors.New("the id is not 16 lowercase hex characters")
	}
	if name, err := cleanName(fa.Name); err != nil || name != fa.Name {
		return nil, fmt.Errorf("bad name %q", fa.Name)
	}
	if d, err := cleanDescription(fa.Description); err != nil || d != fa.Description {
		return nil, errors.New("bad description")
	}
	if fa.CreatedAt.IsZero() {
		return nil, errors.New(`no "created_at"`)
	}
	var h keyHash
	if len(fa.KeySHA256) != hex.EncodedLen(len(h)) || !isLowerHex(fa.KeySHA256) {
		return nil, errors.New(`"key_sha256" is not 64 lowercase hex characters`)
	}
	_, _ = hex.Decode(h[:], []byte(fa.KeySHA256)) // cannot fail: length and digits checked above
	roles := make(map[string]Role, len(fa.Roles))
	for ws, r := range fa.Roles {
		if err := checkWorkspace(ws); err != nil {
			return nil, err
		}
		if err := checkRole(r); err != nil {
			return nil, fmt.Errorf("workspace %q: %w", ws, err)
		}
		roles[ws] = r
	}
	acct := Account{ID: fa.ID, Name: fa.Name, Description: fa.Description, CreatedAt: fa.CreatedAt.UTC(), Roles: roles}
	return &entry{acct: acct, hash: h}, nil
}

// describeJSONError adds the byte offset to JSON syntax and type errors.
func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d: %w", syn.Offset, err)
	case errors.As(err, &typ):
		return fmt.Errorf("wrong JSON type at byte %d: %w", typ.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the file is truncated: %w", err)
	}
	return err
}

// writeFileAtomic replaces path with data (mode 0600) through atomicfile.
// replaced reports that the new file replaced the old one, so an error
// with replaced set means the new content may or may not survive a crash.
func writeFileAtomic(path string, data []byte) (replaced bool, err error) {
	err = atomicfile.Write(path, data, 0o600)
	if err != nil {
		return errors.Is(err, atomicfile.ErrNotDurable), fmt.Errorf("auth: write account store: %w", err)
	}
	return false, nil
}
