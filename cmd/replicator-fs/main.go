// Command replicator-fs is replicator's first-party storage plugin for a
// local or mounted directory (file:// replicas). replicator starts it
// beside itself; it is not run by hand.
package main

import (
	"github.com/sqlitereplicator/replicator/plugins/fs"
	"github.com/sqlitereplicator/replicator/sdk"
)

func main() { sdk.Serve("fs", fs.Open) }
