// Command replicator-gcs is replicator's first-party storage plugin for
// Google Cloud Storage (gs:// replicas). replicator starts it from beside
// itself or from PATH; it is not run by hand.
package main

import (
	"github.com/sqlitereplicator/replicator/plugins/gcs"
	"github.com/sqlitereplicator/replicator/sdk"
)

func main() { sdk.Serve("gcs", gcs.Open) }
