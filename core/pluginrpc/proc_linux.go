package pluginrpc

import (
	"os/exec"
	"syscall"
)

// dieWithParent asks the kernel to kill the plugin when Flowline dies, even
// by SIGKILL, so that no plugin process outlives it. (The SDK also watches
// its parent, for the rare case where the thread that started it is gone.)
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
