package kafkasink

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running
// after them: every Manager, Kafka client and kfake cluster a test starts
// must be stopped by the test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
