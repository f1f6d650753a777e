//go:build !linux

package sdk

import (
	"os"
	"time"
)

// exitWithParent ends the process once its parent is gone: the host may
// have died without a chance to stop its plugins, and an orphaned plugin
// must not keep credentials and connections open. Without Linux's
// parent-death signal, the parent is checked once a second.
func exitWithParent() {
	go pollParent(os.Getppid(), time.Second)
}
