//go:build !synodtest

package main

// This file stands in for testhooks.go in the production binary: no test
// hook can be switched on (see testhooks.go). Called, doing nothing, on
// `synod node`'s command goroutine.

import (
	"github.com/urfave/cli/v2"

	"synod/node"
)

func testHookFlags() []cli.Flag { return nil }

func applyTestHooks(*cli.Context, *node.Config) {}
