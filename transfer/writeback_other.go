//go:build !linux

package transfer

import (
	"errors"
	"os"
)

func startWriteback(f *os.File, off, n int64) {}

func dropWritten(f *os.File, off, n int64) {}

func preallocate(f *os.File, off, n int64) error { return nil }

func setDirect(f *os.File, on bool) error {
	if on {
		return errors.ErrUnsupported
	}
	return nil
}
