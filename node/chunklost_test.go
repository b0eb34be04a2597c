package node

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"synod/filestore/chunks"
)

// TestNoteFetchLost: a chunk stops counting as owed only after lostAfter
// tries in a row in which every other member said it lacks it; any other
// outcome in between starts the count again, and a fetch settles it.
func TestNoteFetchLost(t *testing.T) {
	lostErr := fmt.Errorf("%w: x", ErrChunkLost)
	otherErr := fmt.Errorf("%w: x", ErrChunkUnavailable)
	tests := []struct {
		name  string
		tries []error
		owed  bool
	}{
		{"fetched", []error{nil}, false},
		{"unreachable", []error{otherErr, otherErr, otherErr}, true},
		{"lost once", []error{lostErr}, true},
		{"lost long enough", repeat(lostErr, lostAfter), false},
		{"lost, once unreachable, lost", append(append(repeat(lostErr, lostAfter-1), otherErr), repeat(lostErr, lostAfter-1)...), true},
		{"lost, then fetched", append(repeat(lostErr, lostAfter-1), nil), false},
	}
	n := &Node{log: zerolog.Nop()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sum chunks.Sum
			lacking, lost := map[chunks.Sum]int{}, map[chunks.Sum]int{}
			for _, err := range tt.tries {
				n.noteFetch(sum, 10, err, lacking, lost)
			}
			if _, owed := lacking[sum]; owed != tt.owed {
				t.Fatalf("owed = %v, want %v (lost count %d)", owed, tt.owed, lost[sum])
			}
		})
	}
	if !errors.Is(lostErr, ErrChunkUnavailable) {
		t.Fatal("ErrChunkLost does not wrap ErrChunkUnavailable")
	}
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
