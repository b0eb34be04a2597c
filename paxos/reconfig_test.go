package paxos

import (
	"errors"
	"testing"
)

// TestLiveFollowersAtEveryTick: a master that hears its followers answer
// every heartbeat finds them live at every tick, also just after the
// check-quorum window turned over: a membership change and a handover are
// not refused for followers that answered a moment ago.
func TestLiveFollowersAtEveryTick(t *testing.T) {
	const window = 10 // scriptConfig's ElectionTicks
	for offset := range 2 * window {
		t.Run("", func(t *testing.T) {
			c := newCluster(t, clusterOptions{nodes: 3})
			c.electFirst()
			c.tick(offset)
			m := c.node(1).r
			conf := NewConfiguration([]NodeID{1, 2}, nil)
			if _, err := m.ProposeConfig(conf); err != nil {
				var nl *NotLiveError
				if errors.As(err, &nl) {
					t.Fatalf("%d ticks after the election: followers that answered every heartbeat are not live: %v", offset, err)
				}
				t.Fatalf("%d ticks after the election: ProposeConfig: %v", offset, err)
			}
		})
	}
	for offset := range 2 * window {
		t.Run("", func(t *testing.T) {
			c := newCluster(t, clusterOptions{nodes: 3})
			c.electFirst()
			c.tick(offset)
			if _, err := c.node(1).r.TransferMastership(); err != nil {
				t.Fatalf("%d ticks after the election: TransferMastership: %v", offset, err)
			}
		})
	}
}
