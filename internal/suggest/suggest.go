// Package suggest finds the closest known word to a misspelt one, for
// "did you mean" hints in error messages.
//
//	if s, ok := suggest.Closest("cnt", []string{"count", "sum"}); ok {
//		fmt.Printf("unknown function %q (did you mean %q?)\n", "cnt", s)
//	}
package suggest

import (
	"strings"
	"unicode/utf8"
)

// Closest returns the candidate nearest to word, and false when none is
// near enough to be a plausible misspelling.
//
// Nearness is the optimal-string-alignment distance (insertions, deletions,
// substitutions and transpositions of adjacent characters each cost 1)
// between the words lower-cased and stripped of '_' and '-', so a change of
// case or of separators alone ("lastn", "feature-views") is always the
// nearest. A
// candidate qualifies when the distance is at most a third of the longer
// word's length, rounded up: "cnt" finds "count" (2 of 5) but "sum" does not
// find "max" (2 of 3). Ties go to the earlier candidate, so the answer is
// deterministic. When no candidate is that close, a word of at least three
// characters that begins exactly one candidate is taken as a truncation of
// it: "clicked_count_1h" finds "clicked_count_1h_continuous".
func Closest(word string, candidates []string) (string, bool) {
	w := normalize(word)
	best, bestDist := "", -1
	for _, c := range candidates {
		d := distance(w, normalize(c))
		if d > limit(word, c) {
			continue
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist >= 0 {
		return best, true
	}
	return extension(w, candidates)
}

// extension returns the only candidate that w (normalized) begins.
func extension(w []rune, candidates []string) (string, bool) {
	if len(w) < 3 {
		return "", false
	}
	found := ""
	for _, c := range candidates {
		if strings.HasPrefix(string(normalize(c)), string(w)) {
			if found != "" {
				return "", false
			}
			found = c
		}
	}
	return found, found != ""
}

// normalize lower-cases s and drops the separators people misremember.
func normalize(s string) []rune {
	s = strings.ToLower(s)
	s = strings.NewReplacer("_", "", "-", "").Replace(s)
	return []rune(s)
}

// limit is the largest distance accepted between a and b.
func limit(a, b string) int {
	n := max(utf8.RuneCountInString(a), utf8.RuneCountInString(b))
	return (n + 2) / 3
}

// distance is the optimal-string-alignment distance between a and b, using
// three rolling rows of the dynamic-programming table.
func distance(a, b []rune) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
