package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/internal/units"
	"github.com/dozo-vault/dozo/mount"
)

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "present the datasets you may read as a read-only directory, decrypted on demand",
		ArgsUsage: "DIR",
		Description: "DIR/DATASET/FILE is every file you may read, decrypted as it is read:\n" +
			"a read fetches and verifies only the segments that cover it, through an\n" +
			"in-memory cache of --cache-size; a sequential reader gets the next segment\n" +
			"fetched ahead. No plaintext is written to disk (files are opened with FUSE\n" +
			"direct I/O, so not even the kernel's page cache keeps them).\n\n" +
			"Every open is an access check and an audited fetch at dozod. Access is\n" +
			"checked again every 20 seconds: once your grant is revoked or expires, or\n" +
			"you or the dataset are frozen, opens and reads fail with 'Permission\n" +
			"denied' within a minute, also for files already open.\n\n" +
			"The mount runs in the foreground until 'dozo umount DIR' or Ctrl-C;\n" +
			"--background returns once it is up (later messages are then not shown).\n" +
			"Needs /dev/fuse and fusermount3 (Debian/Ubuntu: apt-get install fuse3).\n\n" +
			"EXAMPLES:\n" +
			"   mkdir -p ~/dozo && dozo mount ~/dozo &\n" +
			"   samtools view -c ~/dozo/JGAD000001/NA12878.cram\n" +
			"   samtools view ~/dozo/JGAD000001/NA12878.bam chr20:1000000-1100000\n" +
			"   dozo umount ~/dozo\n" +
			"   dozo mount ~/dozo --dataset JGAD000001 --cache-size 1GiB\n" +
			"   dozo mount ~/dozo --background        # in a batch job; 'dozo umount ~/dozo' at its end",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dataset", Aliases: []string{"d"}, Usage: "mount only dataset `ID` (default: every dataset you may read)"},
			&cli.StringFlag{Name: "cache-size", Value: "256MiB", Usage: "`SIZE` of memory for decrypted segments and open files' readers, e.g. 512MiB, 2GiB"},
			&cli.BoolFlag{Name: "background", Usage: "return once the mount is up, leaving it to a process of its own"},
			&cli.BoolFlag{Name: "fuse-debug", Hidden: true, Usage: "log every FUSE request"},
			jsonFlag,
		},
		Action: runMount,
	}
}

func umountCommand() *cli.Command {
	return &cli.Command{
		Name:      "umount",
		Usage:     "unmount a directory mounted with 'dozo mount'",
		ArgsUsage: "DIR",
		Description: "Runs fusermount3 -u DIR. It fails while a program still uses the mount.\n\n" +
			"EXAMPLES:\n" +
			"   dozo umount ~/dozo",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "DIR"); err != nil {
				return err
			}
			dir := c.Args().First()
			if _, err := os.Lstat(dir); err != nil {
				return &client.Error{Op: i18n.Sprintf("unmounting %s", dir), Err: err}
			}
			if err := mount.Unmount(dir, false); err != nil {
				return &client.Error{Op: i18n.Sprintf("unmounting %s", dir), Err: err, Hint: i18n.Sprintf("close the programs using it ('fuser -vm %s' lists them)", dir)}
			}
			if c.Bool("json") {
				return printJSON(stdout(c), mountOut{Dir: dir, Mounted: false})
			}
			return nil
		},
	}
}

// minCacheSize keeps --cache-size above what the smallest segments need.
const minCacheSize = 8 << 20

func runMount(c *cli.Context) error {
	if err := needArgs(c, 1, "DIR"); err != nil {
		return err
	}
	dir := c.Args().First()
	op := i18n.Sprintf("mounting on %s", dir)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return &client.Error{Op: op, Err: err, Hint: i18n.T("create the directory first (mkdir)")}
	} else if err != nil {
		return &client.Error{Op: op, Err: err}
	}
	size, err := units.ParseSize(c.String("cache-size"))
	if err != nil {
		return badArg(c, i18n.Errorf("bad --cache-size: %w", err))
	}
	if size < minCacheSize {
		return badArg(c, i18n.Errorf("--cache-size %s is below the minimum of 8MiB", c.String("cache-size")))
	}
	if ds := c.String("dataset"); ds != "" {
		if err := api.ValidateDatasetID(ds); err != nil {
			return badArg(c, err)
		}
	}
	cl, d, err := newClient(c)
	if err != nil {
		return err
	}
	id, err := d.Identity()
	if err != nil {
		return &client.Error{Op: op, Err: err}
	}
	child := os.Getenv(backgroundEnv) == "1"
	if c.Bool("background") && !child {
		return startBackground(c, op)
	}
	// The cache's buffers are the heap; keep the GC from letting garbage
	// grow to another cache's worth.
	if debug.SetMemoryLimit(-1) == math.MaxInt64 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(size + 64<<20)
	}
	// A background mount stops writing once its starter has gone: no
	// one reads its messages then.
	var quiet atomic.Bool
	say := func(format string, args ...any) {
		if !quiet.Load() {
			notice(c)(format, args...)
		}
	}
	// Reads go on while an unmount waits for programs to close the files.
	ctx, cancel := context.WithCancel(context.WithoutCancel(c.Context))
	defer cancel()
	m, err := mount.Start(ctx, dir, mount.NewRemote(cl, id), mount.Options{
		Dataset: c.String("dataset"), CacheSize: size,
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		Logf: say, Debug: c.Bool("fuse-debug"),
	})
	if err != nil {
		return &client.Error{Op: op, Err: err, Hint: mountHint(err)}
	}
	sets := m.FS.Datasets()
	var list []string
	for _, id := range slices.Sorted(maps.Keys(sets)) {
		list = append(list, fmt.Sprintf("%s (%s)", id, plural(sets[id], "file", "files")))
	}
	say("mounted %s read-only at %s", strings.Join(list, ", "), dir)
	if c.Bool("json") {
		if err := printJSON(stdout(c), mountOut{Dir: dir, Mounted: true, Datasets: sets, CacheSize: size, PID: os.Getpid()}); err != nil {
			m.Unmount()
			return err
		}
	}
	if child {
		say("%s %d", backgroundReady, os.Getpid())
		quiet.Store(true)
		// Its starter stops reading: a later write (a library's log line)
		// to the pipe would kill the mount with SIGPIPE.
		if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
			replaceFD(int(null.Fd()), 1)
			replaceFD(int(null.Fd()), 2)
			null.Close()
		}
	} else {
		say("unmount with 'dozo umount %s' or Ctrl-C", dir)
	}

	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	done := make(chan struct{})
	go func() { m.Wait(); close(done) }()
	for tries := 0; ; {
		select {
		case <-done:
			say("unmounted %s", dir)
			return nil
		case <-sig:
			tries++
			if tries == 1 {
				if err := m.Unmount(); err != nil {
					say("cannot unmount %s yet: a program is using it; close it, or press Ctrl-C again to detach the mount now (it goes once no program uses it)", dir)
				}
				continue
			}
			if err := mount.Unmount(dir, true); err != nil {
				say("detaching %s: %v", dir, err)
			}
		}
	}
}

// backgroundEnv marks the process that 'dozo mount --background' starts
// to hold the mount; backgroundReady starts the line by which it says the
// mount is up, and its pid.
const (
	backgroundEnv   = "DOZO_MOUNT_BACKGROUND"
	backgroundReady = "mount is up in the background, pid"
)

// startBackground runs this command again, without --background, in a
// session of its own, relays what it prints until the mount is up (or it
// failed), and returns.
func startBackground(c *cli.Context, op string) error {
	exe, err := os.Executable()
	if err != nil {
		return &client.Error{Op: op, Err: err}
	}
	var args []string
	for _, a := range os.Args[1:] {
		if a != "--background" && a != "-background" && a != "--background=true" {
			args = append(args, a)
		}
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), backgroundEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		return &client.Error{Op: op, Err: err}
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return &client.Error{Op: op, Err: err}
	}
	defer pr.Close()
	var last string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, backgroundReady):
			fmt.Fprintln(stderr(c), line+i18n.Sprintf("; unmount with 'dozo umount %s'", c.Args().First()))
			cmd.Process.Release()
			return nil
		case strings.HasPrefix(line, "dozo: "):
			if last != "" {
				fmt.Fprintln(stderr(c), last)
			}
			last = line
		default:
			fmt.Fprintln(stdout(c), line) // --json
		}
	}
	cmd.Wait()
	// The last line is the mount's error: report it as this command's.
	msg := strings.TrimPrefix(strings.TrimPrefix(last, "dozo: "), op+": ")
	if msg == "" {
		msg = i18n.T("the background mount ended before it was up")
	}
	return &client.Error{Op: op, Err: errors.New(msg)}
}

// mountOut is --json's line when the mount is up (and, for umount, down).
type mountOut struct {
	Dir       string         `json:"dir"`
	Mounted   bool           `json:"mounted"`
	Datasets  map[string]int `json:"datasets,omitempty"` // files in each mounted dataset
	CacheSize int64          `json:"cache_size,omitempty"`
	PID       int            `json:"pid,omitempty"` // the process holding the mount
}

func mountHint(err error) string {
	switch {
	case errors.Is(err, client.ErrNoIdentity):
		return "run 'dozo keygen' and 'dozo key register'"
	case strings.Contains(err.Error(), "fusermount"), strings.Contains(err.Error(), "/dev/fuse"):
		return "install fuse3 (apt-get install fuse3); /dev/fuse must exist"
	}
	return client.Hint(err)
}
