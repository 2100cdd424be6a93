package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Mount is a mounted FS.
type Mount struct {
	Dir    string
	FS     *FS
	server *fuse.Server
	stop   context.CancelFunc
}

// Start checks access with dozod (it fails if the datasets cannot be
// listed), mounts the file system on dir, an existing directory that is
// not a symbolic link, and starts the periodic access check. ctx bounds
// the mount's reads; cancelling it does not unmount.
func Start(ctx context.Context, dir string, r Remote, o Options) (*Mount, error) {
	fi, err := os.Lstat(dir)
	switch {
	case err != nil:
		return nil, err
	case fi.Mode()&os.ModeSymlink != 0:
		return nil, fmt.Errorf("%s is a symbolic link; give the directory itself", dir)
	case !fi.IsDir():
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		if _, err2 := exec.LookPath("fusermount"); err2 != nil {
			return nil, errors.New("fusermount3 not found: install fuse3 (apt-get install fuse3)")
		}
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, errors.New("/dev/fuse is missing: this machine cannot mount FUSE file systems")
	}
	ctx, stop := context.WithCancel(ctx)
	f := New(ctx, r, o)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = f.Check(cctx)
	cancel()
	if err != nil {
		stop()
		return nil, err
	}
	sec := time.Second
	ttl := 10 * time.Second
	server, err := fs.Mount(dir, &root{fsys: f}, &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName:        "dozo",
			Name:          "dozo",
			Options:       []string{"ro", "default_permissions"},
			MaxWrite:      1 << 20, // reads of up to 1 MiB per request
			DisableXAttrs: true,
			Debug:         o.Debug,
		},
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NegativeTimeout: &sec,
		UID:             f.opts.UID,
		GID:             f.opts.GID,
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("mounting on %s: %w", dir, err)
	}
	go f.Run(ctx)
	return &Mount{Dir: dir, FS: f, server: server, stop: stop}, nil
}

// Wait returns when the file system is unmounted (Unmount, or
// 'fusermount3 -u DIR' from elsewhere).
func (m *Mount) Wait() {
	m.server.Wait()
	m.stop()
}

// Unmount unmounts the file system; it fails while a process uses it.
func (m *Mount) Unmount() error { return m.server.Unmount() }

// Unmount unmounts dir with fusermount3 -u (-z: lazily, once no process
// uses it), for 'dozo umount' and a second Ctrl-C.
func Unmount(dir string, lazy bool) error {
	bin := "fusermount3"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "fusermount"
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	out, err := exec.Command(bin, append(args, "--", dir)...).CombinedOutput()
	if err != nil {
		msg := string(out)
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s: %s", bin, trimNL(msg))
	}
	return nil
}

func trimNL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
