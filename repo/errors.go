package repo

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/featurelog/featurelog/internal/suggest"
)

// The ways a duration can be wrong; ParseDuration's errors wrap one.
var (
	errDurationSyntax  = errors.New("write whole numbers with the units d, h, m or s, such as 90s, 10m, 1h, 36h, 7d or 1h30m")
	errDurationZero    = errors.New("must be positive")
	errDurationTooLong = errors.New("is too long (the limit is about 292 years)")
)

// Error is one problem found in a repo file.
type Error struct {
	File   string
	Line   int    // 1-based; 0 when the problem has no line (an empty file)
	Object string // the object it concerns, e.g. `feature view "user_click_counts"`; empty for file-level problems
	Msg    string // what is wrong and, where possible, what to do
}

// Error formats the problem as FILE:LINE: OBJECT: MSG.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Object != "" {
		b.WriteString(e.Object + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a repo file, ordered by line. Parse
// returns it (as error) whenever the file is invalid; find it with errors.As.
type Errors struct {
	List []*Error
}

// Error returns one problem per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, err := range e.List {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each *Error to errors.Is and errors.As.
func (e *Errors) Unwrap() []error {
	out := make([]error, len(e.List))
	for i, err := range e.List {
		out[i] = err
	}
	return out
}

// where names the object a problem concerns and the path inside it, so
// messages read `feature view "v": aggregate 2: unknown function ...`.
type where struct {
	object string // `feature view "v"`
	path   string // `aggregate 2`, empty at the object itself
}

// in returns w extended by one path element.
func (w where) in(sub string) where {
	if w.path == "" {
		w.path = sub
	} else {
		w.path += ": " + sub
	}
	return w
}

// problems collects the errors of one Parse.
type problems struct {
	file string
	errs []*Error
}

// count returns how many problems were found so far; comparing counts
// tells whether a step found any.
func (p *problems) count() int { return len(p.errs) }

// add records a problem at line.
func (p *problems) add(line int, w where, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if w.path != "" {
		msg = w.path + ": " + msg
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Object: w.object, Msg: msg})
}

// err returns the collected problems ordered by line (stable, so problems
// on one line keep the order they were found in), or nil.
func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(p.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	return &Errors{List: p.errs}
}

// didYouMean returns ` (did you mean "x"?)` when a candidate is close to
// word, and "" otherwise.
func didYouMean(word string, candidates []string) string {
	if s, ok := suggest.Closest(word, candidates); ok && s != word {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}
