package repo

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Day is a duration unit of the repo file: exactly 24 hours, whatever the
// calendar says (SPEC §1).
const Day = 24 * time.Hour

// durationUnits are the units of the repo file, largest first; a compound
// duration must use them in this order, each at most once.
var durationUnits = []struct {
	suffix byte
	d      time.Duration
}{{'d', Day}, {'h', time.Hour}, {'m', time.Minute}, {'s', time.Second}}

// ParseDuration parses a repo-file duration: one or more terms of a whole
// number and a unit (d, h, m, s), largest unit first: "90s", "36h", "7d",
// "1h30m". A day is exactly 24h. The result is positive; ParseDuration
// rejects zero, negative and fractional durations. Its errors quote s and
// wrap errDurationSyntax, errDurationZero or errDurationTooLong.
func ParseDuration(s string) (time.Duration, error) {
	d, err := parseDurationTerms(s)
	if err == nil && d == 0 {
		err = errDurationZero
	}
	if err != nil {
		return 0, &durationError{s: s, err: err}
	}
	return d, nil
}

// durationError is a ParseDuration failure.
type durationError struct {
	s   string
	err error
}

func (e *durationError) Error() string {
	if errors.Is(e.err, errDurationSyntax) {
		return fmt.Sprintf("%q is not a duration: %v", e.s, e.err)
	}
	return fmt.Sprintf("duration %q %v", e.s, e.err)
}

func (e *durationError) Unwrap() error { return e.err }

// parseDurationTerms parses the terms of a duration, allowing zero.
func parseDurationTerms(s string) (time.Duration, error) {
	if s == "" {
		return 0, errDurationSyntax
	}
	var total time.Duration
	next := 0 // index into durationUnits of the largest unit still allowed
	for s != "" {
		i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
		if i <= 0 {
			return 0, errDurationSyntax
		}
		u := unitIndex(s[i], next)
		if u < 0 {
			return 0, errDurationSyntax
		}
		term, err := durationTerm(s[:i], durationUnits[u].d)
		if err != nil || term > math.MaxInt64-total {
			return 0, errDurationTooLong
		}
		total += term
		s, next = s[i+1:], u+1
	}
	return total, nil
}

// unitIndex returns the index of the unit spelt c among durationUnits[from:],
// or -1.
func unitIndex(c byte, from int) int {
	for i := from; i < len(durationUnits); i++ {
		if durationUnits[i].suffix == c {
			return i
		}
	}
	return -1
}

// durationTerm returns digits × unit, failing on overflow.
func durationTerm(digits string, unit time.Duration) (time.Duration, error) {
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > int64(math.MaxInt64/unit) {
		return 0, errDurationTooLong
	}
	return time.Duration(n) * unit, nil
}

// FormatDuration prints d in its largest whole unit, as feature names and
// plans spell durations: 1d, 36h, 90m, 90s. A duration that is no whole
// number of seconds prints in Go's notation (it cannot come from a repo file).
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	for _, u := range durationUnits {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + string(u.suffix)
		}
	}
	return d.String()
}
