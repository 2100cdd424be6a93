package vault

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the dev Vault end with the test binary, even when
// that is killed.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
