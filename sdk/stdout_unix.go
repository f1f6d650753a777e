//go:build unix

package sdk

import (
	"os"

	"golang.org/x/sys/unix"
)

// guardStdout moves the real stdout to a private descriptor, returned for
// the handshake, and points descriptor 1 at stderr, so stray writes to
// stdout by the plugin or its libraries land in the host's log instead of
// corrupting the handshake.
func guardStdout() *os.File {
	fd, err := unix.Dup(1)
	if err != nil {
		return os.Stdout
	}
	if err := unix.Dup2(2, 1); err != nil {
		_ = unix.Close(fd)
		return os.Stdout
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "/dev/stdout")
}
