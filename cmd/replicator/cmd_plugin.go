package main

import (
	"context"

	"github.com/sqlitereplicator/replicator/sdk"
)

// runPlugin is the hidden entry point through which the host starts a
// first-party plugin compiled into this executable: "replicator plugin
// serve NAME".
func runPlugin(_ context.Context, e *env, args []string) error {
	if len(args) != 2 || args[0] != "serve" {
		return usagef("usage: replicator plugin serve NAME (started by replicator itself, not by hand)")
	}
	open, ok := compiled()[args[1]]
	if !ok {
		return usagef("first-party plugin %q is not compiled into this executable; it is the executable replicator-%s", args[1], args[1])
	}
	sdk.Serve(args[1], open)
	return nil
}
