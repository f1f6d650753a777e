// Command replicator-sftp is replicator's first-party storage plugin for
// SFTP servers (sftp:// replicas). replicator starts it from beside itself
// or from PATH; it is not run by hand.
package main

import (
	"github.com/sqlitereplicator/replicator/plugins/sftp"
	"github.com/sqlitereplicator/replicator/sdk"
)

func main() { sdk.Serve("sftp", sftp.Open) }
