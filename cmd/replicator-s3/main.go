// Command replicator-s3 is replicator's first-party storage plugin for S3
// and S3-compatible stores (s3:// replicas). replicator starts it from
// beside itself or from PATH; it is not run by hand.
package main

import (
	"github.com/sqlitereplicator/replicator/plugins/s3"
	"github.com/sqlitereplicator/replicator/sdk"
)

func main() { sdk.Serve("s3", s3.Open) }
