package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// maxLine bounds one line of a streamed answer (historical, run, output
// stream) the client reads.
const maxLine = 64 << 20

// readLine returns the next line, without its newline, in a new slice
// that the caller may keep. A last line without a newline is returned
// with io.ErrUnexpectedEOF: in an answer, a connection cut mid-line,
// whose line is lost.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxLine+1 {
			return nil, fmt.Errorf("a line of the answer is longer than %d bytes", maxLine)
		}
		switch {
		case err == nil:
			return append(line, chunk[:len(chunk)-1]...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			line = append(line, chunk...)
		case err == io.EOF && len(line)+len(chunk) > 0:
			return append(line, chunk...), io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// eachMember calls fn with each member of a JSON object, in order: its
// name quoted as in obj, and its value; both alias obj. It checks that obj
// is valid JSON.
func eachMember(obj []byte, fn func(quotedName, val []byte) error) error {
	if !json.Valid(obj) {
		return errors.New("not valid JSON")
	}
	i := skipSpace(obj, 0)
	if obj[i] != '{' {
		return errors.New("not a JSON object")
	}
	i = skipSpace(obj, i+1)
	if obj[i] == '}' {
		return nil
	}
	for {
		end := skipString(obj, i)
		name := obj[i:end]
		i = skipSpace(obj, end)
		i = skipSpace(obj, i+1) // ':'
		vend := skipValue(obj, i)
		if err := fn(name, obj[i:vend]); err != nil {
			return err
		}
		i = skipSpace(obj, vend)
		if obj[i] == '}' {
			return nil
		}
		i = skipSpace(obj, i+1) // ','
	}
}

// nameIs reports whether a quoted JSON name is name (as encoding/json
// decodes it: invalid UTF-8 becomes U+FFFD).
func nameIs(quoted []byte, name string) bool {
	if bytes.IndexByte(quoted, '\\') < 0 && utf8.Valid(quoted) {
		return string(quoted[1:len(quoted)-1]) == name
	}
	var s string
	return json.Unmarshal(quoted, &s) == nil && s == name
}

// The skip functions walk JSON already checked by json.Valid.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && !bytes.ContainsRune([]byte(" \t\r\n,}]"), rune(b[i])) {
		i++
	}
	return i
}
