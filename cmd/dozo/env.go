package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/internal/suggest"
)

var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON on standard output"}

// configDir opens (creating, 0700) the config directory.
func configDir(c *cli.Context) (*client.Dir, error) {
	return client.OpenDir(c.String("config-dir"))
}

// brokerURL is --broker / DOZO_BROKER, else the broker remembered at login.
func brokerURL(c *cli.Context, d *client.Dir) string {
	if b := c.String("broker"); b != "" {
		return b
	}
	return d.Login().Broker
}

// caCert is --ca-cert / DOZO_CA_CERT, else the copy kept at login when
// talking to the broker of that login.
func caCert(c *cli.Context, d *client.Dir) string {
	if f := c.String("ca-cert"); f != "" {
		return f
	}
	if l := d.Login(); l.Broker != "" && brokerURL(c, d) == l.Broker {
		return d.BrokerCA()
	}
	return ""
}

// rememberLoginCA makes a successful login keep a copy of --ca-cert in
// the config directory (see client.Dir.SaveBrokerCA).
func rememberLoginCA(cmds []*cli.Command) {
	login := findCommand(cmds, "login")
	if login == nil || login.Action == nil {
		return
	}
	action := login.Action
	login.Action = func(c *cli.Context) error {
		if err := action(c); err != nil {
			return err
		}
		f := c.String("ca-cert")
		if f == "" {
			return nil
		}
		d, err := configDir(c)
		if err != nil {
			return err
		}
		return d.SaveBrokerCA(f)
	}
}

// newClient returns a dozod client carrying the stored login token.
func newClient(c *cli.Context) (*client.Client, *client.Dir, error) {
	d, err := configDir(c)
	if err != nil {
		return nil, nil, err
	}
	tok, err := d.Token()
	if err != nil {
		return nil, nil, &client.Error{Op: cmdPath(c), Err: err}
	}
	cl, err := clientFor(c, d, tok)
	if err == nil {
		showWarnings(c, cl, d) // warnings.go: once a day
	}
	return cl, d, err
}

func clientFor(c *cli.Context, d *client.Dir, token string) (*client.Client, error) {
	o := client.Options{
		Broker:    brokerURL(c, d),
		CACert:    caCert(c, d),
		Token:     token,
		UserAgent: "dozo/" + version,
		RetryFor:  c.Duration("broker-retry"),
		Notice:    brokerNotice(c),
	}
	if o.RetryFor == 0 {
		o.RetryFor = -1 // --broker-retry 0: fail at once
	}
	if c.Bool("debug") {
		o.Debug = func(format string, args ...any) {
			fmt.Fprintf(c.App.ErrWriter, "dozo: debug: "+format+"\n", args...)
		}
	}
	return client.New(o)
}

// stderr is where notices and progress go; stdout carries results (and,
// for "fetch -o -", the data itself).
func stderr(c *cli.Context) io.Writer {
	if c.App.ErrWriter != nil {
		return c.App.ErrWriter
	}
	return os.Stderr
}

func stdout(c *cli.Context) io.Writer {
	if c.App.Writer != nil {
		return c.App.Writer
	}
	return os.Stdout
}

func notice(c *cli.Context) func(string, ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(stderr(c), "dozo: "+i18n.T(format)+"\n", args...)
	}
}

// brokerNotice prints the client's notice that dozod is away. On a
// terminal it first clears the line, where a progress bar may be drawn,
// so the notice stands on a line of its own.
func brokerNotice(c *cli.Context) func(string, ...any) {
	return func(format string, args ...any) {
		if w := stderr(c); isTerminal(w) {
			fmt.Fprint(w, "\r\033[K")
		}
		notice(c)(format, args...)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal (for progress bars and
// password prompts).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// datasetIDArg is the command's one argument, a dataset id, checked
// locally so a malformed one is a usage error that never reaches dozod.
func datasetIDArg(c *cli.Context) (string, error) {
	id, err := datasetArg(c)
	if err != nil {
		return "", err
	}
	if err := api.ValidateDatasetID(id); err != nil {
		return "", badArg(c, err)
	}
	return id, nil
}

// datasetArg is the command's one argument, a dataset ID, as typed:
// dozod judges an ID it is asked about (datasetIDArg checks it here first).
func datasetArg(c *cli.Context) (string, error) {
	if err := needArgs(c, 1, "the dataset ID"); err != nil {
		return "", err
	}
	return c.Args().First(), nil
}

// datasetClient is datasetArg and the client to ask dozod with: the
// opening of a command that reads one dataset.
func datasetClient(c *cli.Context) (string, *client.Client, error) {
	id, err := datasetArg(c)
	if err != nil {
		return "", nil, err
	}
	cl, _, err := newClient(c)
	return id, cl, err
}

// needArgs checks the number of positional arguments.
func needArgs(c *cli.Context, n int, what string) error {
	if c.NArg() != n {
		return badArg(c, i18n.Errorf("want %s, got %s", what, plural(c.NArg(), "argument", "arguments")))
	}
	return nil
}

// badArg is a mistake on the command line of the running command.
func badArg(c *cli.Context, err error) error {
	return usageErr(cmdPath(c), err)
}

// exitUsage is the exit status of a mistake on the command line, as for
// other command-line tools (1 is a failure of the work, 3 a scrub's
// findings, 130 an interrupt).
const exitUsage = 2

// usageErr is a mistake on the command line of command name ("" for dozo
// itself): it points to the help and exits with status 2.
func usageErr(name string, err error) error {
	hint := i18n.T("see dozo --help")
	if name != "" {
		hint = i18n.Sprintf("see dozo %s --help", name)
	}
	op := name
	if op == "" {
		op = i18n.T("reading the command line")
	}
	return &exitError{code: exitUsage, err: &client.Error{Op: op, Err: err, Hint: hint}}
}

// plural is "1 file", "2 files" (in Japanese "1 ファイル", "2 ファイル":
// both words go through the catalog).
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + i18n.T(one)
	}
	return fmt.Sprintf("%d %s", n, i18n.T(many))
}

// pluralWord is one or many by n, without the number.
func pluralWord(n int, one, many string) string {
	if n == 1 {
		return i18n.T(one)
	}
	return i18n.T(many)
}

// allOf is "the 1 segment", "all 3 segments".
func allOf(n int, one, many string) string {
	if n == 1 {
		return i18n.Sprintf("the 1 %s", i18n.T(one))
	}
	return i18n.Sprintf("all %d %s", n, i18n.T(many))
}

// joinInts writes numbers as words do: "0, 3 and 5".
func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// unknownCommand refuses a word where a command is expected that names
// none, suggesting the nearest one. args are those after dozo's own flags.
func unknownCommand(app *cli.App, args []string) error {
	cmds, path := app.Commands, ""
	for _, a := range args {
		if isFlag(a) {
			return nil
		}
		cmd := findCommand(cmds, a)
		if cmd == nil && (a == "help" || a == "h") {
			if path != "" {
				return nil // urfave/cli's help of a command group
			}
			return usageErr("", i18n.New(`unknown command "help"; did you mean "dozo --help" or "dozo COMMAND --help"?`))
		}
		if cmd == nil {
			err := i18n.Errorf("unknown command %q", a)
			if s := suggestCommand(a, cmds); s != "" {
				err = i18n.Errorf("unknown command %q; did you mean %q?", a, strings.TrimSpace(path+" "+s))
			}
			return usageErr(path, err)
		}
		if len(cmd.Subcommands) == 0 || cmd.Action != nil {
			return nil
		}
		cmds, path = cmd.Subcommands, strings.TrimSpace(path+" "+cmd.Name)
	}
	return nil
}

// suggestCommand returns the command name nearest to word, if it is near enough
// to be a typo: at most a third of its letters (and 2) apart.
func suggestCommand(word string, cmds []*cli.Command) string {
	best, bestD := "", max(len(word)/3, 2)+1
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		for _, n := range c.Names() {
			if d := suggest.Distance(word, n); d < bestD {
				best, bestD = c.Name, d
			}
		}
	}
	return best
}

// cmdPath is the command being run, e.g. "dataset create".
func cmdPath(c *cli.Context) string {
	var names []string
	for _, x := range c.Lineage() {
		if x.Command != nil && x.Command.Name != "" && x.Command.Name != c.App.Name {
			names = append([]string{x.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinOr(ss []string, none string) string {
	if len(ss) == 0 {
		return none
	}
	return strings.Join(ss, ", ")
}

// keepLogin renews the stored login in the background while a transfer
// runs, and warns through say before one that cannot be renewed runs out.
// Vault's address is the one used at login (else VAULT_ADDR).
func keepLogin(c *cli.Context, d *client.Dir, say func(string, ...any)) *client.LoginKeeper {
	tok, _ := d.Token()
	addr := d.Login().VaultAddr
	if addr == "" {
		addr = os.Getenv("VAULT_ADDR")
	}
	o := client.KeeperOptions{VaultAddr: addr, VaultCACert: os.Getenv("VAULT_CACERT"), Token: tok, Notice: say}
	if c.Bool("debug") {
		o.Debug = func(format string, args ...any) {
			fmt.Fprintf(stderr(c), "dozo: debug: "+format+"\n", args...)
		}
	}
	return client.StartLoginKeeper(c.Context, o)
}
