package main

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
)

// localizeHelp translates the help of app and of every command in it (usage
// lines, descriptions, flag texts and urfave/cli's headings) into the
// language chosen; English leaves them as written.
func localizeHelp(app *cli.App) {
	if i18n.Lang() == i18n.English {
		return
	}
	walkHelp(app, func(s *string) { *s = i18n.T(*s) })
	flagString := cli.FlagStringer
	cli.FlagStringer = func(f cli.Flag) string {
		return strings.Replace(flagString(f), "(default: ", i18n.T("(default: "), 1)
	}
	cli.AppHelpTemplate = helpHeadings.Replace(cli.AppHelpTemplate)
	for _, t := range []*string{&cli.CommandHelpTemplate, &cli.SubcommandHelpTemplate} {
		// urfave/cli's usage line of a command is a template of its own,
		// not exported: it is spelled out here to translate its words.
		*t = strings.ReplaceAll(*t, `{{template "usageTemplate" .}}`, usageLine)
		*t = helpHeadings.Replace(*t)
	}
}

// usageLine is urfave/cli's usageTemplate.
const usageLine = `{{if .UsageText}}{{wrap .UsageText 3}}{{else}}{{.HelpName}}{{if .VisibleFlags}} [command options]{{end}}{{if .ArgsUsage}} {{.ArgsUsage}}{{else}}{{if .Args}} [arguments...]{{end}}{{end}}{{end}}`

// helpHeadings are urfave/cli's template words in Japanese (the only other
// language dozo speaks).
var helpHeadings = strings.NewReplacer(
	"NAME:", i18n.In(i18n.Japanese, "NAME:"),
	"USAGE:", i18n.In(i18n.Japanese, "USAGE:"),
	"VERSION:", i18n.In(i18n.Japanese, "VERSION:"),
	"DESCRIPTION:", i18n.In(i18n.Japanese, "DESCRIPTION:"),
	"CATEGORY:", i18n.In(i18n.Japanese, "CATEGORY:"),
	"COMMANDS:", i18n.In(i18n.Japanese, "COMMANDS:"),
	"GLOBAL OPTIONS:", i18n.In(i18n.Japanese, "GLOBAL OPTIONS:"),
	"OPTIONS:", i18n.In(i18n.Japanese, "OPTIONS:"),
	"[global options]", i18n.In(i18n.Japanese, "[global options]"),
	"command [command options]", i18n.In(i18n.Japanese, "command [command options]"),
	"[command options]", i18n.In(i18n.Japanese, "[command options]"),
	"[arguments...]", i18n.In(i18n.Japanese, "[arguments...]"),
)

// walkHelp calls f on every help text of app: its and its commands' usage,
// usage line and description, and each flag's usage (argument names such
// as DATASET stay as they are). A flag
// shared by several commands is visited once.
func walkHelp(app *cli.App, f func(*string)) {
	seen := map[cli.Flag]bool{}
	flags := func(fs []cli.Flag) {
		for _, fl := range fs {
			if seen[fl] {
				continue
			}
			seen[fl] = true
			if u := flagUsage(fl); u != nil && *u != "" {
				f(u)
			}
		}
	}
	texts := func(ss ...*string) {
		for _, s := range ss {
			if *s != "" {
				f(s)
			}
		}
	}
	texts(&app.Usage, &app.Description)
	flags(app.Flags)
	flags([]cli.Flag{cli.HelpFlag, cli.VersionFlag})
	var cmds func([]*cli.Command)
	cmds = func(cs []*cli.Command) {
		for _, c := range cs {
			texts(&c.Usage, &c.UsageText, &c.Description)
			flags(c.Flags)
			cmds(c.Subcommands)
		}
	}
	cmds(app.Commands)
}

// flagUsage is the Usage field of a urfave/cli flag (every flag type has
// one), or nil.
func flagUsage(fl cli.Flag) *string {
	v := reflect.ValueOf(fl)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	u := v.Elem().FieldByName("Usage")
	if !u.IsValid() || u.Kind() != reflect.String || !u.CanSet() {
		return nil
	}
	return u.Addr().Interface().(*string)
}

// formatError is errorLine in the chosen language. The
// parts dozo words itself (operations, its own errors and hints) are
// translated where they are made; here the client's, transfer's and
// dozod's are: an operation or hint is translated whole (clientPhrase),
// an error text the catalog knows is replaced by its translation, an
// expired login is reworded, and a refusal from dozod the catalog does not
// know is kept in English after a translated word for its HTTP status.
func formatError(err error, debug bool) string {
	if i18n.Lang() == i18n.English {
		return errorLine(err, debug)
	}
	// The operation and the hint the client or transfer set, when the
	// catalog knows them.
	f := client.Describe(err)
	if f.Op != "" {
		f.What = clientPhrase(f.Op) + strings.TrimPrefix(f.What, f.Op)
	}
	f.Hint = clientPhrase(f.Hint)
	line := renderFailure(f, debug)
	var xl *client.ExpiredLoginError
	if errors.As(err, &xl) {
		en := xl.Error()
		return strings.Replace(line, en, i18n.Sprintf("your login expired at %s; run `dozo login` and rerun the same command to resume",
			xl.At.UTC().Format("2006-01-02 15:04:05 UTC")), 1)
	}
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Body.Error != "" && !i18n.Has(i18n.Japanese, ae.Body.Error) {
		if g, ok := statusWords[ae.Status]; ok {
			line = strings.Replace(line, ae.Body.Error, i18n.T(g)+": "+ae.Body.Error, 1)
		}
	}
	for _, t := range errorTexts {
		line = strings.Replace(line, t, i18n.T(t), 1)
	}
	for _, p := range errorPatterns {
		line = p.re.ReplaceAllStringFunc(line, func(m string) string {
			args := []any{}
			for _, a := range p.re.FindStringSubmatch(m)[1:] {
				args = append(args, a)
			}
			return fmt.Sprintf(i18n.T(p.format), args...)
		})
	}
	return line
}

// errorPatterns are urfave/cli's complaints about a command line, each
// with the message (its English wording as a format of the parts the
// pattern captures) that says it in the chosen language.
var errorPatterns = []struct {
	re     *regexp.Regexp
	format string
}{
	{regexp.MustCompile(`Required flags? "([^"]*)" not set`), `Required flag "%s" not set`},
	{regexp.MustCompile(`flag provided but not defined: (-\S+)`), `flag provided but not defined: %s`},
	{regexp.MustCompile(`invalid value "([^"]*)" for flag (-\S+):`), `invalid value "%s" for flag %s:`},
	{regexp.MustCompile(`flag needs an argument: (-\S+)`), `flag needs an argument: %s`},
}

// statusWords say in a word what dozod's answer means, before its English
// text.
var statusWords = map[int]string{
	http.StatusBadRequest:          "dozod rejected the request",
	http.StatusUnauthorized:        "dozod does not accept your login",
	http.StatusForbidden:           "access refused",
	http.StatusNotFound:            "not found",
	http.StatusConflict:            "conflict",
	http.StatusGone:                "no longer available",
	http.StatusTooManyRequests:     "too many requests",
	http.StatusInternalServerError: "dozod failed",
	http.StatusServiceUnavailable:  "dozod is unavailable",
}

// errorTexts are the English texts of the client's errors and hints, and
// of dozod's most common answers, that the error line translates. The
// longer come first where one contains another.
var errorTexts = []string{
	// dozod
	"Vault is unavailable; try again later",
	"dozod keeps no keys or identities of its own and refuses every request while Vault is unreachable; operators: GET /v1/health shows Vault's state",
	// the client's hints
	"log in again with 'dozo login'",
	"ask the dataset's custodian or an admin for access",
	"check the name; datasets you have no access to look like missing ones",
	"dozod failed; retry later or tell its operators the request id (--debug shows it)",
	"interrupted; run the same command again to resume",
	"pass the broker's CA certificate with --ca-cert or DOZO_CA_CERT",
	"a storage server's certificate is not trusted by this system; add the centre's CA with SSL_CERT_DIR or SSL_CERT_FILE",
	"the broker's certificate does not match; check --broker and --ca-cert",
	"is dozod running? check --broker / DOZO_BROKER",
	"check the host name in --broker / DOZO_BROKER",
	"check the network and --broker / DOZO_BROKER",
	"a storage server is unreachable (tell the operators if it persists)",
	"run 'dozo login --username NAME' first",
	"run 'dozo keygen' and 'dozo key register' first",
	"a piece is missing from storage; ask the operators to run a scrub",
	"check the file's permissions",
	"free some disk space, then run the same command again to resume",
	// many files at once
	"pass --recursive (-r) to upload the files below it",
	"the dataset already has a different file of that name",
	"delete the stored file first, or upload this one under another name with --name",
	"nothing was fetched; move those paths away, or pass --force to replace files that differ",
	"matches no available file",
	"wait for that upload to finish, or upload this file under another name with --name",
	// the client's errors
	"dozod no longer accepts your login (it expired or was revoked); run `dozo login` and rerun the same command to resume",
	"lost dozod mid-transfer: ",
	"dozod stopped the transfer: ",
	"cannot reach dozod: ",
	"not logged in",
	"no age identity",
	"checksum mismatch",
	"context canceled",
}

// clientPhrase is an operation or hint of package client or transfer in
// the chosen language: its translation if the catalog has the phrase,
// else the message of the clientPhrases pattern it matches, else the
// phrase as it is.
func clientPhrase(s string) string {
	if s == "" || i18n.Has(i18n.Japanese, s) {
		return i18n.T(s)
	}
	for _, p := range clientPhrases {
		m := p.re.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		args := make([]any, len(m)-1)
		for i, a := range m[1:] {
			if p.nested {
				a = clientPhrase(a)
			}
			args[i] = a
		}
		return fmt.Sprintf(i18n.T(p.format), args...)
	}
	return s
}

// clientPhrases are the operations and hints packages client and transfer
// compose from a fixed wording and a name: each a pattern matching the
// whole phrase, and the message (the wording as a format of what the
// pattern captures) that says it. nested: what the pattern captures is a
// phrase of theirs too, not a name. The more specific come first.
var clientPhrases = []struct {
	re     *regexp.Regexp
	format string
	nested bool
}{
	// operations
	{phrase(`fetching regions of (.+)`), "fetching regions of %s", false},
	{phrase(`fetching (.+)`), "fetching %s", false},
	{phrase(`uploading (.+)`), "uploading %s", false},
	{phrase(`opening (.+)`), "opening %s", false},
	{phrase(`locking (.+)`), "locking %s", false},
	{phrase(`verifying (.+) against (.+)`), "verifying %s against %s", false},
	{phrase(`reading the index (.+)`), "reading the index %s", false},
	{phrase(`reading (.+)`), "reading %s", false},
	// hints
	{phrase(`run the same command again to resume \((.+) of it verified and kept\)`), "run the same command again to resume (%s of it verified and kept)", false},
	{phrase(`run the same command again; (.+) starts from the beginning`), "run the same command again; %s starts from the beginning", true},
	{phrase(`free some disk space, then (.+)`), "free some disk space, then %s", true},
	{phrase(`(.+); then run the same command again to resume`), "%s; then run the same command again to resume", true},
	{phrase(`the part kept from an interrupted fetch may have been damaged \(e\.g\. by a crash\); it is removed, so run the same command again to fetch the whole file; if that fails too, report it to the operators with the file id (\S+)`),
		"the part kept from an interrupted fetch may have been damaged (e.g. by a crash); it is removed, so run the same command again to fetch the whole file; if that fails too, report it to the operators with the file id %s", false},
	{phrase(`report it to the operators with the file id (\S+)`), "report it to the operators with the file id %s", false},
	{phrase(`wait for the other 'dozo fetch' to (.+) to finish`), "wait for the other 'dozo fetch' to %s to finish", false},
	{phrase(`remove it or pass --force; the fetched file is kept as (.+)`), "remove it or pass --force; the fetched file is kept as %s", false},
	{phrase(`it must be readable by you only: chmod 600 (.+) \(and consider it exposed\)`), "it must be readable by you only: chmod 600 %s (and consider it exposed)", false},
	{phrase(`make it 0700: chmod 700 (.+)`), "make it 0700: chmod 700 %s", false},
	{phrase(`check the regions against the file's references, and that (.+) is this file's index`), "check the regions against the file's references, and that %s is this file's index", false},
	{phrase(`see it with 'dozo ls (.+)'`), "see it with 'dozo ls %s'", false},
	{phrase(`see 'dozo ls (.+)'`), "see 'dozo ls %s'", false},
}

// phrase is a pattern matching the whole of a phrase.
func phrase(re string) *regexp.Regexp { return regexp.MustCompile(`^(?s:` + re + `)$`) }
