package node_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The end-to-end tests talk to real processes through clients that must all
// be closed by the end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
