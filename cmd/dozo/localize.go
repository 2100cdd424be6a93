package main

import (
	"reflect"
	"strings"

	"github.com/urfave/cli/v2"

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
