package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running
// after them: every command a test runs must stop what it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
