package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// members walks an object with encoding/json's tokenizer: the obviously
// correct model of eachMember.
func members(obj []byte) (names []string, vals []string, err error) {
	d := json.NewDecoder(bytes.NewReader(obj))
	tok, err := d.Token()
	if err != nil {
		return nil, nil, err
	}
	if tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("not an object")
	}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, nil, err
		}
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, nil, err
		}
		names, vals = append(names, tok.(string)), append(vals, string(v))
	}
	return names, vals, nil
}

func FuzzEachMember(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1}`, `{"a": "x\"}", "b" : [1, {"c": [2]}], "d":null, "e":true, "f":-1.5e3}`,
		`{"\u00e9t\u00e9":"\\"}`, ` { "a" : { } } `, `[1]`, `"x"`, `{"a":1`, ``, `{"a":[]}`, `{"a":"]}"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		var names []string
		var vals []string
		err := eachMember(obj, func(name, val []byte) error {
			var s string
			require.NoError(t, json.Unmarshal(name, &s), "%q", name)
			require.True(t, nameIs(name, s))
			names, vals = append(names, s), append(vals, string(val))
			return nil
		})
		wantNames, wantVals, werr := members(obj)
		if !json.Valid(obj) || werr != nil {
			require.Error(t, err, "%q", obj)
			return
		}
		require.NoError(t, err, "%q", obj)
		assert.Equal(t, wantNames, names)
		require.Len(t, vals, len(wantVals))
		for i := range vals {
			var got, want bytes.Buffer
			require.NoError(t, json.Compact(&got, []byte(vals[i])))
			require.NoError(t, json.Compact(&want, []byte(wantVals[i])))
			assert.Equal(t, want.String(), got.String(), "member %d of %q", i, obj)
		}
	})
}

// answer is a historical answer of n rows: a spine of two columns and
// six features.
func answer(n int) (cols []Column, body string) {
	for _, name := range []string{"user_id", "ts"} {
		cols = append(cols, Column{Name: name, Spine: true})
	}
	for i := range 6 {
		cols = append(cols, Column{Name: fmt.Sprintf("v.f%d", i), DataType: &DataType{Type: "int64"}})
	}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"user_id":"user%07d","ts":"2024-05-01T12:00:00Z","v.f0":"1","v.f1":"22","v.f2":"333","v.f3":"4444","v.f4":2.5,"v.f5":null}`+"\n", i)
	}
	return cols, b.String()
}

// BenchmarkRowsNext measures reading a streamed answer, per row.
func BenchmarkRowsNext(b *testing.B) {
	cols, body := answer(10_000)
	b.SetBytes(int64(len(body))) // an op reads 10,000 rows
	b.ReportAllocs()
	for b.Loop() {
		r := &Rows{body: io.NopCloser(nil), br: bufio.NewReader(strings.NewReader(body)), cols: cols, lead: 2}
		for range 10_000 {
			if _, err := r.Next(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestRowsNextChecksColumns(t *testing.T) {
	cols, body := answer(2)
	read := func(body string) error {
		r := &Rows{br: bufio.NewReader(strings.NewReader(body)), cols: cols, lead: 2}
		for {
			_, err := r.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	require.NoError(t, read(body))
	assert.ErrorContains(t, read(strings.Replace(body, `"v.f5":null`, `"v.g5":null`, 1)), `line 1: member 8 is "v.g5"`)
	assert.ErrorContains(t, read(strings.Replace(body, `,"v.f5":null`, ``, 1)), "line 1: 7 members for 8 columns")
	assert.ErrorContains(t, read(strings.Replace(body, `"v.f5":null}`, `"v.f5":nul}`, 1)), "line 1: not valid JSON")
	assert.ErrorContains(t, read(body[:len(body)-5]), "unexpected EOF", "an answer cut mid-line")
}
