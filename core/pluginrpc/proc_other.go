//go:build !linux

package pluginrpc

import "os/exec"

// dieWithParent has no kernel help outside Linux; the SDK's parent watch
// ends the plugin when Flowline is gone.
func dieWithParent(*exec.Cmd) {}
