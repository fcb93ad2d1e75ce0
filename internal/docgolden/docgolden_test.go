package docgolden

import (
	"reflect"
	"testing"
)

// TestHexReadsTheWALExample: the parser takes the bytes before the two
// spaces of each line and ignores the comments, as the pages write them.
func TestHexReadsTheWALExample(t *testing.T) {
	b := Hex(t, "wal.md", "first-entry")
	if len(b) != 28 || b[0] != 0x1b || string(b[1:5]) != "FLWL" || string(b[23:]) != "hello" {
		t.Fatalf("got % x", b)
	}
}

func TestJSONNamesAndCodeWords(t *testing.T) {
	type inner struct {
		B int `json:"b_field,omitempty"`
		c int
	}
	type outer struct {
		A  string            `json:"a"`
		In []inner           `json:"in"`
		M  map[string]*inner `json:"m"`
		X  int               `json:"-"`
		Y  int
	}
	got := JSONNames(reflect.TypeFor[outer]())
	want := []string{"a", "in", "b_field", "m", "Y"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("JSONNames = %v, want %v", got, want)
	}
	words := codeWords("the `a` and `in[].b_field`, not m or `x.y` but Y")
	for _, w := range []string{"a", "in", "b_field", "x", "y"} {
		if !words[w] {
			t.Errorf("%q not found", w)
		}
	}
	if words["m"] || words["Y"] || words["not"] {
		t.Errorf("words outside code spans: %v", words)
	}
}
