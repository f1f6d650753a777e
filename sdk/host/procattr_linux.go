package host

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the plugin in its own process group (a Ctrl-C meant for
// the host does not kill a plugin in the middle of the host's final sync)
// and has the kernel kill it if the host dies.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
