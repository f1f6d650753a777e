package main

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/sqlitereplicator/replicator/sdk"
)

// version is set at release build time with -ldflags "-X main.version=...".
var version = ""

func versionString() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	return v
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "replicator %s (storage protocol %d)\n", versionString(), sdk.ProtocolVersion)
	return nil
}
