// Command replicator-azure is replicator's first-party storage plugin for
// Azure Blob Storage (abs:// replicas). replicator starts it from beside
// itself or from PATH; it is not run by hand.
package main

import (
	"github.com/sqlitereplicator/replicator/plugins/azure"
	"github.com/sqlitereplicator/replicator/sdk"
)

func main() { sdk.Serve("azure", azure.Open) }
