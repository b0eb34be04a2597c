package line

import (
	"testing"

	"go.uber.org/goleak"
)

// The client tests start servers and connections; none may outlive its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
