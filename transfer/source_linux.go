//go:build linux

package transfer

import (
	"os"
	"syscall"
)

// pseudoFileSystem names the file system of f if it is one whose files
// report sizes that are not their content's (/proc, /sys), else "".
func pseudoFileSystem(f *os.File) string {
	var sfs syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &sfs); err != nil {
		return ""
	}
	switch uint64(sfs.Type) {
	case 0x9fa0: // PROC_SUPER_MAGIC
		return "proc"
	case 0x62656572: // SYSFS_MAGIC
		return "sysfs"
	case 0x64626720: // DEBUGFS_MAGIC
		return "debugfs"
	case 0x73636673: // SECURITYFS_MAGIC
		return "securityfs"
	case 0x27e0eb: // CGROUP_SUPER_MAGIC
		return "cgroup"
	case 0x63677270: // CGROUP2_SUPER_MAGIC
		return "cgroup2"
	}
	return ""
}
