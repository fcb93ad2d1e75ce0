package repo

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse, seeded with every file of
// testdata. Parse must never panic; it returns either a repo, which must
// diff empty against itself and render, or an *Errors whose every problem
// names the file.
//
//	go test ./repo -run '^$' -fuzz FuzzParse -fuzztime 1m
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	bad, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, path := range append(append(seeds, bad...), "../examples/ads/features.yaml") {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("f.yaml", data)
		if err != nil {
			checkFuzzErrors(t, err)
			return
		}
		if p := Diff(r, r); !p.Empty() {
			t.Fatalf("a repo differs from itself:\n%s", p)
		}
		_ = Diff(nil, r).String()
		for _, v := range r.FeatureViews {
			_ = v.ComputeFingerprint()
			_ = v.Columns()
			_ = v.ServingTTL()
		}
	})
}

func checkFuzzErrors(t *testing.T, err error) {
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) == 0 {
		t.Fatalf("want a non-empty *Errors, got %T %v", err, err)
	}
	for _, e := range errs.List {
		if e.File != "f.yaml" || e.Msg == "" {
			t.Fatalf("bad problem %#v", e)
		}
	}
}
