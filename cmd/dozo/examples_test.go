package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/client"
)

// example is one "dozo ..." command shown in a help text.
type example struct {
	where string   // the command whose help shows it, e.g. "dozo grant"
	line  string   // as shown (continuation lines joined)
	args  []string // the words after "dozo"
}

// helpExamples returns every dozo command line in the app's help texts
// (the app's and each command's description and usage text): each line
// whose shell commands include one starting with "dozo", split as a shell
// would (quotes, backslash continuations, pipes, &&, redirections and
// comments).
func helpExamples(t *testing.T, app *cli.App) []example {
	t.Helper()
	var out []example
	add := func(where, text string) {
		text = strings.ReplaceAll(text, "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			if !strings.HasPrefix(line, " ") { // examples are indented, prose is not
				continue
			}
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "dozo ") && !strings.Contains(line, "| dozo ") {
				continue
			}
			cmds, err := shellCommands(line)
			if err != nil {
				t.Errorf("%s --help: cannot split %q: %v", where, line, err)
				continue
			}
			for _, words := range cmds {
				if len(words) > 0 && words[0] == "dozo" {
					out = append(out, example{where: where, line: line, args: words[1:]})
				}
			}
		}
	}
	add("dozo", app.Description)
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			name := prefix + " " + c.Name
			add(name, c.Description)
			add(name, c.UsageText)
			walk(name, c.Subcommands)
		}
	}
	walk("dozo", app.Commands)
	return out
}

// shellCommands splits one shell line into its simple commands' words:
// '...' and "..." quote, a backslash escapes, "|", "&&", "||" and ";"
// separate commands, a redirection drops its target, "#" starts a comment.
func shellCommands(line string) ([][]string, error) {
	var cmds [][]string
	var words []string
	var cur strings.Builder
	inWord, redirect := false, false
	endWord := func() {
		if inWord {
			if !redirect {
				words = append(words, cur.String())
			}
			redirect = false
		}
		cur.Reset()
		inWord = false
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '\'':
			j := slices.Index(rs[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated '")
			}
			cur.WriteString(string(rs[i+1 : i+1+j]))
			inWord, i = true, i+1+j
		case r == '"':
			inWord = true
			for i++; i < len(rs) && rs[i] != '"'; i++ {
				if rs[i] == '\\' && i+1 < len(rs) && strings.ContainsRune(`"\$`+"`", rs[i+1]) {
					i++
				}
				cur.WriteRune(rs[i])
			}
			if i >= len(rs) {
				return nil, errors.New(`unterminated "`)
			}
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			inWord = true
		case r == ' ' || r == '\t':
			endWord()
		case r == '#' && !inWord:
			endCmd()
			return cmds, nil
		case r == '|' || r == ';' || r == '&':
			endCmd()
			if i+1 < len(rs) && (rs[i+1] == '|' || rs[i+1] == '&') {
				i++
			}
		case r == '>' || r == '<':
			endWord()
			redirect = true
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	endCmd()
	return cmds, nil
}

func TestShellCommands(t *testing.T) {
	got, err := shellCommands(`printf '%s\n' "$PW" | dozo login -u alice --password-stdin   # scripts`)
	want := [][]string{{"printf", `%s\n`, "$PW"}, {"dozo", "login", "-u", "alice", "--password-stdin"}}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q %v", got, err)
	}
	got, _ = shellCommands(`dozo ls D --json | jq -r '.[] | "\(.md5)  \(.name)"' > md5sums.txt && dozo a "x \"y\""`)
	want = [][]string{{"dozo", "ls", "D", "--json"}, {"jq", "-r", `.[] | "\(.md5)  \(.name)"`}, {"dozo", "a", `x "y"`}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q", got)
	}
}

// TestHelpExamplesRun runs every example in every help text through the
// real command line: the command and its flags exist, and the values pass
// every check the command makes on this machine. Each runs as far as its
// first request, which a local stand-in for dozod and Vault answers with
// an error, so nothing leaves the machine. An example may also stop at a
// local input it names that does not exist here (a file to upload or
// verify); the integration test TestHelpExamplesOnStack runs those with
// real inputs.
func TestHelpExamplesRun(t *testing.T) {
	var reached atomic.Int64
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprint(w, `{"error":"stand-in server: the example reached the network","request_id":"example"}`)
	}))
	defer stub.Close()
	t.Setenv("VAULT_ADDR", stub.URL)
	t.Setenv("DOZO_BROKER", "")
	pinned := today
	today = func() time.Time { return time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC) } // the day the examples were written for
	defer func() { today = pinned }()

	exs := helpExamples(t, newApp())
	if len(exs) < 60 {
		t.Fatalf("found only %d examples", len(exs))
	}
	for _, ex := range exs {
		work := t.TempDir()
		t.Chdir(work)
		cfg := filepath.Join(work, "cfg")
		d, err := client.OpenDir(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.SaveLogin("hvs.example-token", client.Login{Username: "alice", Broker: stub.URL, VaultAddr: stub.URL}); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(ex.args, "keygen") { // keygen examples make their own
			if _, err := d.Keygen(true, false); err != nil {
				t.Fatal(err)
			}
		}
		args := slices.Clone(ex.args)
		for i, a := range args {
			if strings.HasPrefix(a, "https://") && strings.Contains(a, ".example.org") {
				args[i] = stub.URL // never the real network
			}
			if strings.ContainsAny(a, "*?[") && !strings.HasPrefix(a, "-") {
				if m, _ := filepath.Glob(a); len(m) > 0 {
					args = slices.Replace(args, i, i+1, m...)
				}
			}
		}
		// A password prompt needs a terminal; the same line with the
		// password on standard input checks the same flags.
		if len(args) > 0 && args[0] == "login" && !slices.Contains(args, "--password-stdin") {
			args = append(args, "--password-stdin")
		}
		before := reached.Load()
		app := newApp()
		app.Writer, app.ErrWriter = &strings.Builder{}, &strings.Builder{}
		app.Reader = strings.NewReader("example-password\n")
		full := append([]string{"dozo", "--config-dir", cfg, "--broker", stub.URL}, args...)
		err = app.Run(reorderArgs(app, full))
		switch {
		case err == nil:
		case reached.Load() > before:
		case errors.Is(err, fs.ErrNotExist):
			t.Logf("%s: %q stops at a missing local input: %v", ex.where, ex.line, err)
		default:
			t.Errorf("%s --help shows %q, which fails before reaching a server: %s", ex.where, ex.line, errorLine(err, true))
		}
	}
}
