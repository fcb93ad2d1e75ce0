// Package jsondec pools jsontext decoders over in-memory bodies. A decoder
// carries buffers worth a few kilobytes; request handlers on hot paths take
// one per request and give it back.
//
//	d := jsondec.Get(body)
//	defer jsondec.Put(d)
//	tok, err := d.ReadToken()
//
// What every decoder from Get rejects, so that each caller does not have
// to remember it:
//   - duplicate object names and invalid UTF-8 (jsontext's defaults);
//   - nesting deeper than MaxDepth: the first read fails with an error
//     matching ErrTooDeep (jsontext's own limit, 10000, is fixed and far
//     above what any request of ours needs).
//
// Callers check for trailing data themselves (ReadToken returns io.EOF at
// the end of a single value).
package jsondec

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// MaxDepth is the deepest nesting of objects and arrays a body may have:
// `{}` is depth 1. The deepest legitimate request is an ingest body with
// an array column (body → records → source list → {"record"} → record →
// array: 6), or a historical spine whose pass-through columns hold JSON
// documents; 64 leaves those ample room while keeping a hostile body from
// making a decoder (or a recursive consumer such as encoding/json) work
// through thousands of levels.
const MaxDepth = 64

// ErrTooDeep is matched (errors.Is) by the error a decoder returns for a
// body nested deeper than MaxDepth. Its message names the limit and the
// byte offset of the first bracket past it.
var ErrTooDeep = errors.New("jsondec: JSON nested too deeply")

// DepthError is the error behind ErrTooDeep.
type DepthError struct {
	// Offset is the byte offset, in the body given to Get, of the '{' or
	// '[' that goes deeper than Limit.
	Offset int
	// Limit is the maximum depth (MaxDepth).
	Limit int
}

func (e *DepthError) Error() string {
	return fmt.Sprintf("JSON nesting depth %d (at byte offset %d) exceeds the limit of %d levels of objects and arrays",
		e.Limit+1, e.Offset, e.Limit)
}

// Is makes errors.Is(err, ErrTooDeep) true.
func (e *DepthError) Is(target error) bool { return target == ErrTooDeep }

// Decoder is a pooled decoder reading one in-memory body.
//
// The body is handed to jsontext as a *bytes.Buffer, which jsontext parses
// in place: no copy into a buffer of its own, no mutation of the body,
// and error pointers that name the right members (with a bytes.Reader,
// jsontext refills its buffer in chunks and an error inside a value read
// with ReadValue can name a member after bytes of a later chunk, such as
// "/records/2024-05/1" for "/records/orders/1").
type Decoder struct {
	*jsontext.Decoder
	b bytes.Buffer
}

var pool = sync.Pool{New: func() any {
	d := &Decoder{}
	d.Decoder = jsontext.NewDecoder(&d.b)
	return d
}}

// Get returns a decoder reading data. data must stay unchanged until Put.
// When data is nested deeper than MaxDepth, the decoder's first read
// fails with a *DepthError (wrapped by jsontext as a read error).
func Get(data []byte) *Decoder {
	if off := TooDeep(data, MaxDepth); off >= 0 {
		d := pool.Get().(*Decoder)
		d.b = bytes.Buffer{}
		d.Reset(errReader{&DepthError{Offset: off, Limit: MaxDepth}})
		return d
	}
	return GetPart(data)
}

// GetPart is Get for data that is part of a body already read through a
// decoder from Get (a value it returned whole): its depth was checked
// with that body's, so it is not scanned again.
func GetPart(data []byte) *Decoder {
	d := pool.Get().(*Decoder)
	d.b = *bytes.NewBuffer(data)
	d.Reset(&d.b)
	return d
}

// Put returns d to the pool; d must not be used afterwards.
func Put(d *Decoder) {
	d.b = bytes.Buffer{} // drop the reference to the body
	pool.Put(d)
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TooDeep returns the byte offset of the first '{' or '[' in data that
// opens a level deeper than limit, or -1 if there is none. Brackets inside
// strings do not count. On valid JSON it is exact; on invalid JSON its
// answer does not matter, as the decoder rejects the body anyway.
func TooDeep(data []byte, limit int) int {
	// Fast path: fewer opening brackets than the limit cannot nest past it.
	// bytes.Count is vectorized; most bodies stop here.
	if bytes.Count(data, []byte{'{'})+bytes.Count(data, []byte{'['}) <= limit {
		return -1
	}
	depth := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			end := stringEnd(data, i+1)
			if end < 0 {
				return -1 // unterminated string: a syntax error for the decoder
			}
			i = end
		case '{', '[':
			if depth++; depth > limit {
				return i
			}
		case '}', ']':
			depth--
		}
	}
	return -1
}

// stringEnd returns the index of the '"' closing the string whose contents
// start at from, or -1.
func stringEnd(data []byte, from int) int {
	for j := from; j < len(data); {
		k := bytes.IndexByte(data[j:], '"')
		if k < 0 {
			return -1
		}
		q := j + k
		backslashes := 0
		for p := q - 1; p >= from && data[p] == '\\'; p-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return q
		}
		j = q + 1
	}
	return -1
}

// KindName names a JSON value's kind for error messages: "an object",
// "a number", ...; kind 0 (what an invalid token peeks as) is "invalid
// JSON".
func KindName(k jsontext.Kind) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "invalid JSON"
}
