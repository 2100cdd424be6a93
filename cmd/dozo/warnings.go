package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/client"
)

// warnedFile, in the config dir, holds the UTC day dozod's warnings were
// last shown.
const warnedFile = "warned-on"

// showWarnings prints dozod's warnings for the user (grants about to end)
// to standard error, at most once a day: the first command of a day that
// talks to dozod asks (one whoami) and shows each warning once; later
// commands that day ask nothing. Failing to ask or to remember costs only
// the warning, never the command.
func showWarnings(c *cli.Context, cl *client.Client, d *client.Dir) {
	day := today().Format("2006-01-02")
	path := filepath.Join(d.Path, warnedFile)
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == day {
		return
	}
	ws, err := cl.Warnings(c.Context)
	var te *client.TransportError
	if errors.As(err, &te) {
		return // dozod not reached: ask again next time
	}
	// Any answer, a refusal too, counts as today's check, so a bad token
	// costs dozod one extra refusal a day, not one per command.
	for _, w := range ws {
		notice(c)("warning: %s", printable(w))
	}
	// Written beside and renamed: the name is never opened for writing, so
	// a symlink planted there is replaced, not followed.
	tmp, err := os.CreateTemp(d.Path, "."+warnedFile+".tmp-")
	if err != nil {
		return
	}
	_, werr := tmp.WriteString(day + "\n")
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), path) != nil {
		os.Remove(tmp.Name())
	}
}
