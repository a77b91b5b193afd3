package consultest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel kill the agent if the test binary
// dies without running its cleanups (a timeout panic, a kill -9).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
