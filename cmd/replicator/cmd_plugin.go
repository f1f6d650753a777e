package main

import (
	"context"
	"strings"

	"github.com/sqlitereplicator/replicator/sdk"
)

// runPlugin is the hidden entry point through which the host starts a
// first-party plugin: "replicator plugin serve NAME".
func runPlugin(_ context.Context, e *env, args []string) error {
	if len(args) != 2 || args[0] != "serve" {
		return usagef("usage: replicator plugin serve NAME (started by replicator itself, not by hand)")
	}
	open, ok := builtins()[args[1]]
	if !ok {
		return usagef("unknown first-party plugin %q; known: %s", args[1], strings.Join(builtinNames(), ", "))
	}
	sdk.Serve(args[1], open)
	return nil
}
