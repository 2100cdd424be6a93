package main

import "syscall"

// replaceFD makes fd refer to what from refers to (dup3; Linux on arm64
// has no dup2).
func replaceFD(from, fd int) error { return syscall.Dup3(from, fd, 0) }
