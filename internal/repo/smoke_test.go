package repo

import (
	"fmt"
	"os"
	"testing"
)

func TestSmoke(t *testing.T) {
	data, _ := os.ReadFile("testdata/full.yaml")
	r, err := Parse("full.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Print(Diff(nil, r))
}
