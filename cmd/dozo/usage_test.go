package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// exitStatus is what main would exit with for the command line args.
func exitStatus(t *testing.T, args ...string) (int, string) {
	t.Helper()
	_, _, err := run(t, args...)
	if err == nil {
		return 0, ""
	}
	err = explain(newApp(), append([]string{"dozo"}, args...), err)
	var ec cli.ExitCoder
	if errors.As(err, &ec) && ec.ExitCode() != 0 {
		return ec.ExitCode(), errorLine(err, false)
	}
	return 1, errorLine(err, false)
}

// Mistakes on the command line exit 2 (never 3, a scrub's findings) and
// a mistyped command gets the nearest one suggested.
func TestUsageExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fecth", "D/x", "-o", "x"}, `unknown command "fecth"; did you mean "fetch"?`},
		{[]string{"datset", "list"}, `did you mean "dataset"?`},
		{[]string{"dataset", "craete", "X"}, `did you mean "dataset create"?`},
		{[]string{"admin", "freze"}, `did you mean "admin freeze"?`},
		{[]string{"xyzzy"}, `unknown command "xyzzy" (see dozo --help)`},
		{[]string{"help"}, `unknown command "help"`},
		{[]string{"fetch", "D/x"}, `Required flag "output" not set`},
		{[]string{"fetch", "--bogus", "D/x", "-o", "x"}, "flag provided but not defined"},
		{[]string{"fetch", "-o", "x"}, "want DATASET/NAME, got 0 arguments"},
		{[]string{"fetch", "-o", "x", "a/b", "c/d"}, "several files go to a directory: -o DIR (x is not a directory"},
		{[]string{"fetch", "-o", "x", "a/*.cram"}, "several files go to a directory"},
		{[]string{"fetch", "-o", ".", "a/b", "c/d", "--range", "1-2"}, "--range fetches one file"},
		{[]string{"fetch", "-o", ".", "a/b", "--parallel", "0"}, "--parallel must be 1..64"},
		{[]string{"whoami", "extra"}, "got 1 argument ("},
		{[]string{"fetch", "D/x", "-o", "x", "--range", "z-1"}, "bad range"},
	} {
		code, msg := exitStatus(t, tc.args...)
		if code != exitUsage || !strings.Contains(msg, tc.want) {
			t.Errorf("dozo %s: exit %d %q; want exit 2 and %q", strings.Join(tc.args, " "), code, msg, tc.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	cmds := newApp().Commands
	for word, want := range map[string]string{"fetc": "fetch", "uplaod": "upload", "grnat": "grant", "scrbu": "scrub", "zzzzzz": "", "ls": "ls"} {
		if got := suggestCommand(word, cmds); got != want {
			t.Errorf("suggestCommand(%q) = %q, want %q", word, got, want)
		}
	}
}

func TestPlurals(t *testing.T) {
	for got, want := range map[string]string{
		plural(0, "file", "files"):                  "0 files",
		plural(1, "file", "files"):                  "1 file",
		plural(2, "file", "files"):                  "2 files",
		allOf(1, "segment", "segments"):             "the 1 segment",
		allOf(3, "segment", "segments"):             "all 3 segments",
		joinInts([]int{4}):                          "4",
		joinInts([]int{0, 3, 5}):                    "0, 3 and 5",
		joinOr([]string{"admin", "submitter"}, "-"): "admin, submitter",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
}
