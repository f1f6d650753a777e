//go:build !linux

package host

import "os/exec"

// setProcAttr does nothing here; the plugin still exits when it sees that
// its parent is gone (sdk.Serve).
func setProcAttr(*exec.Cmd) {}
