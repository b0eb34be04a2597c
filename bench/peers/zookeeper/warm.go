package main

// This file owns the JIT warm-up of a fresh ensemble: a few seconds of
// writes and reads on nodes of its own, from connections of its own, run
// on goroutines of its own that end before warmJIT returns, on the bench's
// goroutine, before the measured run connects.

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// defaultJITWarmup is how long warmJIT drives a fresh ensemble. A JVM
// interprets a method until it has run some thousands of times; a run's
// own warm-up is counted in seconds, which at one client is a few hundred
// requests, so without this a 1-client run would measure ZooKeeper half
// interpreted, unlike any ensemble that has served for a while.
const defaultJITWarmup = 4 * time.Second

// warmClients is how many connections warmJIT uses.
const warmClients = 24

// warmJIT drives the servers at addrs for d: each connection (spread over
// the servers) writes its own node, syncs and reads it, and reads it
// plainly, over and over, so every path the workloads take is compiled.
// Its nodes (/jit-warmup-<i>) are outside the workload's keys.
func warmJIT(addrs []string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	deadline := time.Now().Add(d)
	value := make([]byte, 100)
	errs := make([]error, warmClients)
	var wg sync.WaitGroup
	for i := range warmClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(addrs[i%len(addrs) : i%len(addrs)+1])
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Close()
			p := fmt.Sprintf("/jit-warmup-%d", i)
			for time.Now().Before(deadline) {
				if err := put(c, p, value); err != nil {
					errs[i] = fmt.Errorf("zookeeper: JIT warm-up: %w", err)
					return
				}
				if _, err := c.Sync(p); err != nil {
					errs[i] = fmt.Errorf("zookeeper: JIT warm-up: %w", err)
					return
				}
				for range 2 {
					if _, _, err := c.Get(p); err != nil {
						errs[i] = fmt.Errorf("zookeeper: JIT warm-up: %w", err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
