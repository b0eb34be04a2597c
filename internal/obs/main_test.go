package obs_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The tests talk HTTP to real processes and to in-process servers; every
// connection and server must be gone by the end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
