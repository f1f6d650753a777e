package sdk

import (
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// exitWithParent ends the process once its parent is gone: the host may
// have died without a chance to stop its plugins (kill -9, a crash), and
// an orphaned plugin must not keep credentials and connections open.
//
// On Linux the kernel does it: the parent-death signal (SIGKILL) costs no
// wake-up while the host lives, where checking the parent would wake the
// plugin up forever. The setting belongs to the thread that makes the
// prctl call (a thread Go creates later does not inherit it) and the
// kernel honours it as long as that thread lives, so it is made on a
// thread locked to a goroutine that never ends. The host side sets the
// same signal when it starts the plugin (sdk/host); this covers hosts
// that do not. If prctl fails, the parent is checked once a second.
func exitWithParent() {
	ppid := os.Getppid()
	set := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must outlive every caller
		set <- unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
		select {}
	}()
	if err := <-set; err != nil {
		go pollParent(ppid, time.Second)
		return
	}
	// The parent may have died before the signal was set.
	if os.Getppid() != ppid {
		os.Exit(3)
	}
}
