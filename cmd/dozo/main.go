// Command dozo is the researcher's client for the dozo genome-data vault.
//
// It is a thin layer over package client: commands parse flags, call the
// client, and format what comes back (tables for people, --json for
// programs). Files are encrypted and decrypted on this machine only.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/text/language"

	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newApp() *cli.App {
	app := &cli.App{
		Name:    "dozo",
		Usage:   "upload and fetch encrypted, erasure-coded genome files",
		Version: version,
		Description: "dozo encrypts files on this machine with age, erasure-codes the ciphertext\n" +
			"across several object-storage targets and keeps every key in HashiCorp Vault.\n" +
			"Storage and the broker only ever see ciphertext.\n\n" +
			"GETTING STARTED:\n" +
			"   export DOZO_BROKER=https://dozo.example.org:8443 VAULT_ADDR=https://vault.example.org:8200\n" +
			"   dozo login --username alice          # Vault login; token kept in the config dir (0600)\n" +
			"   dozo keygen && dozo key register     # your age key pair; dozod learns the public half\n" +
			"   dozo dataset list                    # what you may see\n" +
			"   dozo fetch JGAD000001/sample1.cram -o sample1.cram\n\n" +
			"Every command explains itself: dozo COMMAND --help.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "broker", EnvVars: []string{"DOZO_BROKER"}, Usage: "dozod's URL, e.g. https://dozo.example.org:8443, or several replicas' URLs separated by commas, tried in turn (default: the one used at login)"},
			&cli.DurationFlag{Name: "broker-retry", EnvVars: []string{"DOZO_BROKER_RETRY"}, Value: client.DefaultBrokerRetry, Usage: "how long to keep retrying while dozod does not answer (a restart, a failover); 0: fail at once"},
			&cli.StringFlag{Name: "ca-cert", EnvVars: []string{"DOZO_CA_CERT"}, Usage: "PEM `FILE`: dozod's certificate or the CA that signed it; only it is trusted for dozod, and never for storage (default: system roots)"},
			&cli.StringFlag{Name: "config-dir", EnvVars: []string{"DOZO_CONFIG_DIR"}, Usage: "`DIR` for the login token, age identity and upload journals, kept 0700 (default: ~/.config/dozo)"},
			&cli.BoolFlag{Name: "debug", Usage: "show more on errors: HTTP status, request path and request id (never tokens or keys)"},
			&cli.StringFlag{Name: "lang", EnvVars: []string{"DOZO_LANG"}, Usage: "language of messages and help: en or ja (default: from LC_ALL, LC_MESSAGES or LANG; ja_JP.UTF-8 gives ja)"},
		},
		Commands: []*cli.Command{
			loginCommand(), whoamiCommand(), logoutCommand(),
			keygenCommand(), keyCommand(),
			datasetCommand(), lsCommand(),
			uploadCommand(), fetchCommand(), verifyCommand(),
			completionCommand(), manCommand(), checksumsCommand(),
			grantCommand(), revokeCommand(), grantsCommand(),
			auditCommand(), adminCommand(), scrubCommand(), jobsCommand(), mountCommand(), umountCommand(),
		},
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		Before: func(c *cli.Context) error {
			if c.String("lang") != "" {
				if _, err := i18n.Parse(c.String("lang")); err != nil {
					return usageError(err)
				}
			}
			return unknownCommand(c.App, c.Args().Slice())
		},
		// Errors are printed once, by main, in dozo's format.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageError(err)
		},
	}
	setUsageErrors(app.Commands, "")
	rememberLoginCA(app.Commands)
	localizeHelp(app)
	return app
}

// setUsageErrors makes flag errors of every command come back as dozo errors.
func setUsageErrors(cmds []*cli.Command, prefix string) {
	for _, c := range cmds {
		name := strings.TrimSpace(prefix + " " + c.Name)
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			return usageErr(name, err)
		}
		setUsageErrors(c.Subcommands, name)
	}
}

func usageError(err error) error { return usageErr("", err) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if t, ok := langArg(os.Args); ok {
		i18n.Set(t)
	}
	app := newApp()
	stopProfiles := startProfiles()
	err := app.RunContext(ctx, reorderArgs(app, os.Args))
	stopProfiles() // before any os.Exit, which would lose the profiles
	if err != nil {
		err = explain(app, os.Args, err)
		printError(os.Stderr, err, hasDebug(os.Args))
		var ec cli.ExitCoder
		if errors.As(err, &ec) && ec.ExitCode() != 0 {
			os.Exit(ec.ExitCode())
		}
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

// explain gives errors urfave/cli makes itself (a missing required flag)
// the command they concern and where to read about it.
func explain(app *cli.App, args []string, err error) error {
	var ce *client.Error
	var ae *client.APIError
	if errors.As(err, &ce) || errors.As(err, &ae) || errors.Is(err, context.Canceled) {
		return err
	}
	var path []string
	cmds := app.Commands
	for _, a := range reorderArgs(app, args)[1:] {
		if c := findCommand(cmds, a); c != nil {
			path = append(path, c.Name)
			cmds = c.Subcommands
		}
	}
	// What is left are urfave/cli's own complaints about the command line
	// (a required flag missing): usage errors.
	return usageErr(strings.Join(path, " "), err)
}

// printError writes the one line a failure gets:
// "dozo: <what failed>: <why> (<what to do>)".
func printError(w io.Writer, err error, debug bool) {
	fmt.Fprintln(w, "dozo: "+formatError(err, debug))
	if debug {
		for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
			fmt.Fprintf(w, "dozo: debug: caused by %T: %s\n", e, strings.ReplaceAll(e.Error(), "\n", " "))
		}
	}
}

// langArg is the language a valid --lang on the command line asks for;
// it is read before the commands are built, as their help is translated
// then. A bad value is reported when the flags are parsed.
func langArg(args []string) (language.Tag, bool) {
	for i, a := range args[1:] {
		if a == "--" {
			break
		}
		v, ok := strings.CutPrefix(a, "--lang=")
		if !ok {
			v, ok = strings.CutPrefix(a, "-lang=")
		}
		if !ok && (a == "--lang" || a == "-lang") && i+2 < len(args) {
			v, ok = args[i+2], true
		}
		if ok {
			t, err := i18n.Parse(v)
			return t, err == nil
		}
	}
	return language.Und, false
}

func hasDebug(args []string) bool {
	for _, a := range args[1:] {
		if a == "--" {
			break
		}
		if a == "--debug" || a == "-debug" || a == "--debug=true" {
			return true
		}
	}
	return false
}

// reorderArgs lets flags follow positional arguments ("dozo fetch DS/NAME
// -o out"), which urfave/cli v2 otherwise treats as more arguments. Within
// the innermost command, flags (with their values) are moved in front of
// the positional arguments; "--" ends flags as usual.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	// Shell completion's flag must stay last, where urfave/cli looks.
	if n := len(args); args[n-1] == "--generate-bash-completion" {
		return append(reorderArgs(app, args[:n-1]), args[n-1])
	}
	out := []string{args[0]}
	flags, cmds := app.Flags, app.Commands
	group := true // a word naming a command is expected here
	i := 1
	for i < len(args) {
		// Leading flags at this level stay where they are.
		for i < len(args) && isFlag(args[i]) && args[i] != "--" {
			out = append(out, args[i])
			if takesValue(flags, args[i]) && i+1 < len(args) {
				out = append(out, args[i+1])
				i++
			}
			i++
		}
		if i >= len(args) {
			return out
		}
		if cmd := findCommand(cmds, args[i]); cmd != nil {
			out = append(out, args[i])
			flags, cmds = cmd.Flags, cmd.Subcommands
			group = len(cmds) > 0 && cmd.Action == nil
			i++
			continue
		}
		if group {
			// Not a command (a typo): leave the rest as it is, to be
			// reported as an unknown command.
			return append(out, args[i:]...)
		}
		break
	}
	var fl, pos []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i:]...)
			break
		}
		if isFlag(a) {
			fl = append(fl, a)
			if takesValue(flags, a) && i+1 < len(args) {
				fl = append(fl, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(append(out, fl...), pos...)
}

func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' }

func takesValue(flags []cli.Flag, a string) bool {
	if strings.Contains(a, "=") {
		return false
	}
	name := strings.TrimLeft(a, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// startProfiles writes a CPU profile to $DOZO_CPUPROFILE and a heap
// (allocation) profile to $DOZO_MEMPROFILE, for performance work on the
// data path (see `make bench`). Environment variables rather than flags, so
// no command's help or argument handling changes. Profiles hold function
// names and sizes, never data or keys.
func startProfiles() (stop func()) {
	var stops []func()
	if path := os.Getenv("DOZO_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
			} else {
				f.Close()
			}
		}
	}
	if path := os.Getenv("DOZO_MEMPROFILE"); path != "" {
		runtime.MemProfileRate = 64 << 10
		stops = append(stops, func() {
			if f, err := os.Create(path); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
