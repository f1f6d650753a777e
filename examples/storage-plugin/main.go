// Command storage-plugin is a third-party storage plugin for replicator:
// "hashdir", a local directory that stores each object in a file named by
// the sha256 of its key (see Store). It depends on nothing of replicator
// but its plugin SDK, and shows everything a plugin needs: an
// sdk.OpenFunc, the sdk.Storage methods with their error codes, declared
// capabilities, and sdk.Serve in main.
//
//	go build -o storage-plugin .
//	replicator conformance -plugin ./storage-plugin -setting path=/tmp/hashdir
package main

import "github.com/sqlitereplicator/replicator/sdk"

func main() {
	sdk.Serve("hashdir", Open)
}
