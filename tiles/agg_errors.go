package tiles

import (
	"errors"
	"fmt"
)

// Errors of the aggregate states. (Kept in this file, beside the states,
// until the package has one errors file.)
var (
	// ErrInvalidAgg is wrapped by every error of Agg.Validate.
	ErrInvalidAgg = errors.New("tiles: invalid aggregator")
	// ErrCorruptState is wrapped by every *StateError.
	ErrCorruptState = errors.New("tiles: corrupt aggregate state")
)

// StateError reports an encoded state that cannot be decoded: wrong
// version, a state of another function, truncated or trailing bytes, or
// values a valid state cannot hold. Find it with errors.As; it wraps
// ErrCorruptState.
type StateError struct {
	Function string // the Agg's function the bytes were decoded as
	Offset   int    // byte offset within the encoding where decoding failed
	Reason   string // what was wrong
}

func (e *StateError) Error() string {
	return fmt.Sprintf("tiles: corrupt %s state at byte %d: %s", e.Function, e.Offset, e.Reason)
}

// Unwrap returns ErrCorruptState.
func (e *StateError) Unwrap() error { return ErrCorruptState }

// Errors of key states (keystate_codec.go).
var (
	// ErrCorruptKeyState is wrapped by every *KeyStateError.
	ErrCorruptKeyState = errors.New("tiles: corrupt key state")
)

// KeyStateError reports an encoded key state that Store.DecodeKeyState
// cannot decode: another version or form, truncated or trailing bytes,
// events out of order, tiles that do not partition the events, or a tile
// state that does not decode. The bytes are corrupt, or were written for
// a view of another Spec. Find it with errors.As; it wraps
// ErrCorruptKeyState.
type KeyStateError struct {
	Offset int    // byte offset within the encoding where decoding failed
	Reason string // what was wrong
}

func (e *KeyStateError) Error() string {
	return fmt.Sprintf("tiles: corrupt key state at byte %d: %s", e.Offset, e.Reason)
}

// Unwrap returns ErrCorruptKeyState.
func (e *KeyStateError) Unwrap() error { return ErrCorruptKeyState }
