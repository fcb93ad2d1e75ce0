package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running
// after them: every Open, server and background loop a test starts must be
// stopped by the test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
