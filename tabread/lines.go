package tabread

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// LineReader reads a JSON Lines stream line by line, skipping blank lines
// while counting them, so that errors can name the line a user sees in
// an editor.
type LineReader struct {
	r    *bufio.Reader
	max  int    // longest line accepted, in bytes
	line int    // number of the line last returned, from 1
	buf  []byte // holds a line that spans several bufio buffers
}

// NewLineReader reads lines of at most maxLine bytes from r.
func NewLineReader(r io.Reader, maxLine int) *LineReader {
	return &LineReader{r: bufio.NewReaderSize(r, 64<<10), max: maxLine}
}

// Next returns the next non-blank line without its line ending, and its
// number (from 1). The slice is valid until the next call. At the end it
// returns io.EOF; a line longer than the limit is a *LineError; a read
// error is returned as is.
func (lr *LineReader) Next() ([]byte, int, error) {
	for {
		line, err := lr.read()
		if err != nil {
			return nil, lr.line, err
		}
		if len(bytes.TrimSpace(line)) > 0 {
			return bytes.TrimRight(line, "\r"), lr.line, nil
		}
	}
}

// read returns the next line, blank or not.
func (lr *LineReader) read() ([]byte, error) {
	lr.buf = lr.buf[:0]
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if len(lr.buf)+len(chunk) > lr.max+1 { // +1: the '\n'
			lr.line++
			return nil, &LineError{Line: lr.line, Err: fmt.Errorf("line is longer than %d bytes", lr.max)}
		}
		switch {
		case err == nil:
			lr.line++
			if len(lr.buf) == 0 {
				return chunk[:len(chunk)-1], nil
			}
			lr.buf = append(lr.buf, chunk[:len(chunk)-1]...)
			return lr.buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			lr.buf = append(lr.buf, chunk...)
		case err == io.EOF && len(lr.buf)+len(chunk) > 0:
			lr.line++ // a last line without a newline
			lr.buf = append(lr.buf, chunk...)
			return lr.buf, nil
		default:
			return nil, err
		}
	}
}

// rowLines remembers the line numbers of the most recent rows, so that an
// engine error about spine row n can name its line. The engine reports
// errors about rows of the chunk it is working on, which are recent.
type rowLines struct {
	lines [1 << 16]int32 // line of row r at r % len; 0 = unknown
	rows  int            // rows recorded so far
}

func (rl *rowLines) add(line int) {
	rl.lines[rl.rows%len(rl.lines)] = int32(min(line, 1<<31-1))
	rl.rows++
}

// line returns the line of row n (from 1), if it is still remembered.
func (rl *rowLines) line(n int) (int, bool) {
	if n < 1 || n > rl.rows || rl.rows-n >= len(rl.lines) {
		return 0, false
	}
	return int(rl.lines[(n-1)%len(rl.lines)]), true
}
