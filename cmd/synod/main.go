// Command synod is the one binary of synod: replicas, proxies, the local
// cluster launcher, the client verbs and the benchmark.
package main

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
