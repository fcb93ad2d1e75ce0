package httpapi_test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running
// after them: every Open, server and background loop a test starts must be
// stopped by the test. After a run of every test (no -run or -skip), it
// also fails when a (path, method, status) of api/openapi.yaml was not
// exercised (contract_test.go).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(coverageRun{m})
}

// coverageRun runs the tests, then checks the document's coverage.
type coverageRun struct{ m *testing.M }

func (r coverageRun) Run() int {
	code := r.m.Run()
	if code != 0 || !wholePackage() {
		return code
	}
	summary, err := checkCoverage()
	fmt.Println(summary)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	return 0
}

// wholePackage reports whether this run selected every test.
func wholePackage() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}
