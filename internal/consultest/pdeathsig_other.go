//go:build !linux

package consultest

import "os/exec"

// setParentDeathSignal does nothing where the kernel offers no such signal;
// t.Cleanup still stops the agent.
func setParentDeathSignal(*exec.Cmd) {}
