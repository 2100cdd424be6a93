// Command dozod is dozo's broker: identity, grants, catalog and audit.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/broker"
)

var version = "dev"

func newApp() *cli.App {
	return &cli.App{
		Name:        "dozod",
		Usage:       "the dozo broker (control plane)",
		Version:     version,
		Description: "dozod checks callers' Vault tokens, keeps the catalog and grants, wraps file keys\nwith Vault Transit and presigns storage URLs; it never handles payload bytes.\n\n" + broker.ConfigHelp,
		Commands: []*cli.Command{
			serveCommand(),
			genCertCommand(),
			catalogCommand(), // catalog.go
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(*cli.Context) error {
					fmt.Println(version)
					return nil
				},
			},
		},
	}
}

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "dozod:", err)
		os.Exit(1)
	}
}
