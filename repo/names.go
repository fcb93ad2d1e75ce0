package repo

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxNameLen bounds every name a repo file declares. Names end up in URLs,
// metric labels and column headers; 128 is ample and keeps them printable.
const MaxNameLen = 128

// ValidName reports whether s is a valid name for an entity, source,
// feature view, feature service, feature or column: ASCII letters, digits
// and underscores, not starting with a digit, at most MaxNameLen bytes.
// The rule makes every column an identifier that transform expressions can
// read, and every served name `<view>.<feature>` unambiguous.
func ValidName(s string) bool {
	return validChars(s, false) && (s[0] < '0' || s[0] > '9')
}

// ValidWorkspaceName reports whether s is a valid workspace name: like
// ValidName, but hyphens are allowed too and the first character must be
// a letter, as in Tecton's workspace names ("ingestapi-live").
func ValidWorkspaceName(s string) bool {
	return validChars(s, true) && isLetter(s[0])
}

func validChars(s string, hyphen bool) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '_' && !(hyphen && c == '-') {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// fixName proposes a valid name for an invalid one: every other character
// becomes '_', and a leading digit gets a '_' before it. It returns "" when
// it cannot help (empty or overlong names).
func fixName(s string) string {
	if s == "" || len(s) > MaxNameLen {
		return ""
	}
	b := []byte(s)
	for i, c := range b {
		if !isLetter(c) && !(c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if b[0] >= '0' && b[0] <= '9' {
		b = append([]byte{'_'}, b...)
	}
	if !ValidName(string(b)) {
		return ""
	}
	return string(b)
}

// exprKeywords are words the expr-lang lexer reserves; a column with such
// a name could not be read by a transform.
var exprKeywords = []string{
	"and", "contains", "else", "endsWith", "false", "if", "in", "let",
	"matches", "nil", "not", "or", "startsWith", "true",
}

// reservedColumn reports whether name is an expr-lang keyword.
func reservedColumn(name string) bool { return slices.Contains(exprKeywords, name) }

// defaultFeatureName is the SPEC §1 default name of an aggregate:
// `<input>_<function>_<window>_<interval>`, e.g. clicked_count_1h_continuous
// or clicked_last_distinct_10_1h_offset_1h_continuous.
func defaultFeatureName(f *Feature, interval string) string {
	return f.Input + "_" + functionLabel(f) + "_" + f.Window.String() + "_" + interval
}

// functionLabel spells a function with its parameter: last_10,
// first_distinct_10, approx_percentile_p95, approx_percentile_p99_9.
func functionLabel(f *Feature) string {
	switch f.Function {
	case "last_n", "first_n", "last_distinct_n", "first_distinct_n":
		return strings.TrimSuffix(f.Function, "n") + strconv.Itoa(f.N)
	case "approx_percentile":
		return "approx_percentile_p" + percentileLabel(f.Percentile)
	}
	return f.Function
}

// percentileLabel prints a quantile as a percentage with '_' for the
// decimal point: 0.95 → 95, 0.999 → 99_9. Rounding to 6 decimals of a
// percent hides float noise (0.999×100 is 99.89999…).
func percentileLabel(q float64) string {
	pct := math.Round(q*1e8) / 1e6
	return strings.ReplaceAll(strconv.FormatFloat(pct, 'f', -1, 64), ".", "_")
}

// intervalLabel spells an aggregation interval in feature names:
// "continuous" or the tile size (10m).
func intervalLabel(interval time.Duration) string {
	if interval == 0 {
		return "continuous"
	}
	return FormatDuration(interval)
}

// String spells the window as feature names do: 1h, lifetime, 1h_offset_1h.
func (w Window) String() string {
	s := "lifetime"
	if !w.Lifetime {
		s = FormatDuration(w.Size)
	}
	if w.Offset > 0 {
		s += "_offset_" + FormatDuration(w.Offset)
	}
	return s
}
