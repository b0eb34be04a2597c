// Command synod is the one binary of synod: replicas, proxies, the local
// cluster launcher, the client verbs and the benchmark.
package main

// This file owns main: it runs the app (app.go) on the main goroutine and
// exits with the code its error maps to.

import (
	"fmt"
	"os"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "synod:", err)
		os.Exit(exitCode(err))
	}
}
