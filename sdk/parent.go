package sdk

import (
	"os"
	"time"
)

// pollParent exits once the process's parent is no longer ppid (it died
// and the process was re-parented), checking every interval.
func pollParent(ppid int, every time.Duration) {
	for {
		time.Sleep(every)
		if os.Getppid() != ppid {
			os.Exit(3)
		}
	}
}
