package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/client"
)

// commandPaths lists every runnable command, e.g. ["dataset","create"].
func commandPaths(cmds []*cli.Command, prefix []string) [][]string {
	var out [][]string
	for _, c := range cmds {
		p := append(slices.Clone(prefix), c.Name)
		out = append(out, p)
		out = append(out, commandPaths(c.Subcommands, p)...)
	}
	return out
}

func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	app := newApp()
	var o, e bytes.Buffer
	app.Writer, app.ErrWriter = &o, &e
	app.Reader = strings.NewReader("")
	err = app.Run(reorderArgs(app, append([]string{"dozo"}, args...)))
	return o.String(), e.String(), err
}

func TestHelpEveryCommand(t *testing.T) {
	paths := commandPaths(newApp().Commands, nil)
	if len(paths) < 15 {
		t.Fatalf("only %d commands", len(paths))
	}
	for _, p := range paths {
		out, _, err := run(t, append(p, "--help")...)
		if err != nil {
			t.Errorf("%v --help: %v", p, err)
			continue
		}
		name := strings.Join(p, " ")
		if !strings.Contains(out, "EXAMPLES:") {
			t.Errorf("dozo %s --help has no examples:\n%s", name, out)
		}
		if !strings.Contains(out, "dozo "+p[0]) {
			t.Errorf("dozo %s --help shows no usage line", name)
		}
		// Every leaf command speaks JSON.
		leaf := true
		for _, q := range paths {
			if len(q) > len(p) && slices.Equal(q[:len(p)], p) {
				leaf = false
			}
		}
		if leaf && !strings.Contains(out, "--json") {
			t.Errorf("dozo %s has no --json", name)
		}
	}
	out, _, err := run(t, "--help")
	if err != nil || !strings.Contains(out, "GETTING STARTED") || !strings.Contains(out, "DOZO_BROKER") {
		t.Errorf("dozo --help: %v\n%s", err, out)
	}
}

func TestReorderArgs(t *testing.T) {
	app := newApp()
	cases := []struct{ in, want string }{
		{"fetch DS/a -o out", "fetch -o out DS/a"},
		{"fetch DS/a -o - --range 0-9", "fetch -o - --range 0-9 DS/a"},
		{"--debug fetch DS/a --raw -o x", "--debug fetch --raw -o x DS/a"},
		{"--broker https://b grant DS bob --until 2030-01-01", "--broker https://b grant --until 2030-01-01 DS bob"},
		{"dataset create X --title 'a b'", "dataset create --title 'a b' X"},
		{"upload -d DS a b --name=c", "upload -d DS --name=c a b"},
		{"upload -d DS -- -weird", "upload -d DS -- -weird"},
		{"ls DS --json", "ls --json DS"},
	}
	for _, c := range cases {
		in := append([]string{"dozo"}, splitQ(c.in)...)
		got := strings.Join(reorderArgs(app, in)[1:], "|")
		if want := strings.Join(splitQ(c.want), "|"); got != want {
			t.Errorf("reorder %q = %q, want %q", c.in, got, want)
		}
	}
}

// splitQ splits on spaces, honouring single quotes.
func splitQ(s string) []string {
	var out []string
	var cur strings.Builder
	q := false
	for _, r := range s {
		switch {
		case r == '\'':
			q = !q
		case r == ' ' && !q:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}

func TestErrorLine(t *testing.T) {
	var b bytes.Buffer
	ae := &client.APIError{Method: "PUT", Path: "/v1/datasets/D/grants/bob", Status: 403}
	ae.Body.Error = "only the custodian may grant"
	ae.Body.RequestID = "rid-7"
	printError(&b, &client.Error{Op: "granting bob access to D", Err: ae}, false)
	line := b.String()
	if !strings.HasPrefix(line, "dozo: granting bob access to D: only the custodian may grant (") || strings.Count(line, "\n") != 1 {
		t.Errorf("error line %q", line)
	}
	b.Reset()
	printError(&b, &client.Error{Op: "granting bob access to D", Err: ae}, true)
	if !strings.Contains(b.String(), "HTTP 403") || !strings.Contains(b.String(), "rid-7") {
		t.Errorf("debug error lacks status/request id: %q", b.String())
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]string{
		"want DATASET/NAME":  {"fetch", "-o", "x"},
		"bad file reference": {"fetch", "/nonsense", "-o", "x"},
		"not a directory":    {"fetch", "nonsense", "-o", "x"},
		"bad range":          {"fetch", "D/a", "-o", "x", "--range", "9-1"},
		"--name needs":       {"upload", "-d", "D", "--name", "n", "a", "b"},
		"bad --rs":           {"dataset", "create", "D", "--title", "t", "--rs", "4"},
		"segment-size":       {"dataset", "create", "D", "--title", "t", "--segment-size", "1000"},
		"bad date":           {"grant", "D", "bob", "--until", "31/12/2030"},
		"not logged in":      {"ls", "D"},
		"no such file":       {"upload", "-d", "D", filepath.Join(dir, "missing")},
	}
	for want, args := range cases {
		_, _, err := run(t, append([]string{"--config-dir", dir, "--broker", "http://127.0.0.1:1"}, args...)...)
		if err == nil {
			t.Errorf("%v succeeded", args)
			continue
		}
		var b bytes.Buffer
		printError(&b, err, false)
		if !strings.Contains(b.String(), want) || !strings.Contains(b.String(), "(") {
			t.Errorf("%v: %q lacks %q or a hint", args, b.String(), want)
		}
	}
}

func TestKeygenCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cfg")
	out, _, err := run(t, "--config-dir", dir, "keygen", "--json")
	if err != nil || !strings.Contains(out, `"recipient": "age1pq1`) {
		t.Fatalf("keygen: %v %s", err, out)
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %v", fi.Mode().Perm())
	}
	fi, _ = os.Stat(filepath.Join(dir, "identity.age"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("identity mode %v", fi.Mode().Perm())
	}
	if _, _, err := run(t, "--config-dir", dir, "keygen"); err == nil || !strings.Contains(errorLine(err, false), "--force") {
		t.Errorf("second keygen: %v", err)
	}
	if _, _, err := run(t, "--config-dir", dir, "keygen", "--classic", "--force"); err != nil {
		t.Error(err)
	}
}

func TestLoginNeedsPassword(t *testing.T) {
	_, _, err := run(t, "--config-dir", t.TempDir(), "login", "-u", "alice", "--password-stdin", "--vault-addr", "http://127.0.0.1:1")
	if err == nil || !errors.As(err, new(*client.Error)) || !strings.Contains(errorLine(err, false), "password") {
		t.Errorf("login with empty stdin: %v", err)
	}
}
