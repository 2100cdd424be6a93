package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/internal/i18n"
)

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: "Prints a script that completes dozo's commands and flags in your shell; it asks\n" +
			"dozo itself (dozo ... --generate-bash-completion) what may follow.\n\n" +
			"EXAMPLES:\n" +
			"   source <(dozo completion bash)                 # this bash session; add it to ~/.bashrc to keep it\n" +
			"   dozo completion zsh > \"${fpath[1]}/_dozo\"       # zsh, then start a new shell\n" +
			"   dozo completion fish > ~/.config/fish/completions/dozo.fish",
		Flags:  []cli.Flag{jsonFlag},
		Action: runCompletion,
	}
}

func runCompletion(c *cli.Context) error {
	if err := needArgs(c, 1, "bash, zsh or fish"); err != nil {
		return err
	}
	var script string
	switch sh := c.Args().First(); sh {
	case "bash":
		script = bashCompletion
	case "zsh":
		script = zshCompletion
	case "fish":
		s, err := c.App.ToFishCompletion()
		if err != nil {
			return err
		}
		script = s
	default:
		return badArg(c, i18n.Errorf("unknown shell %q", sh))
	}
	if c.Bool("json") {
		return printJSON(stdout(c), map[string]string{"shell": c.Args().First(), "script": script})
	}
	_, err := fmt.Fprint(stdout(c), script)
	return err
}

// bashCompletion asks dozo for the words that may follow those typed so
// far. It needs nothing but bash (not the bash-completion package).
const bashCompletion = `# bash completion for dozo; load with: source <(dozo completion bash)
_dozo_complete() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local opts
  if [[ "$cur" == -* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _dozo_complete dozo
`

const zshCompletion = `#compdef dozo
# zsh completion for dozo; install with: dozo completion zsh > "${fpath[1]}/_dozo"
_dozo() {
  local -a opts
  local cur=${words[-1]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
if [[ "$funcstack[1]" == "_dozo" ]]; then
  _dozo "$@"
else
  compdef _dozo dozo
fi
`

// manCommand prints dozo's manual page (roff), made from the same text as
// --help; `make man` writes it to man/dozo.1.
func manCommand() *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the manual page (roff) for man(1)",
		Hidden: true,
		Description: "EXAMPLES:\n" +
			"   dozo man > dozo.1 && man ./dozo.1",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 0, "no arguments"); err != nil {
				return err
			}
			page, err := c.App.ToManWithSection(1)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(stdout(c), map[string]string{"section": "1", "page": page})
			}
			_, err = fmt.Fprint(stdout(c), page)
			return err
		},
	}
}
