//go:build !linux

package vault

import "os/exec"

func dieWithTest(*exec.Cmd) {}
