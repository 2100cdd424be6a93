// Command kurad is kura's broker: identity, grants, catalog and audit.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ddbj/kura/broker"
)

var version = "dev"

func newApp() *cli.App {
	return &cli.App{
		Name:        "kurad",
		Usage:       "the kura broker (control plane)",
		Version:     version,
		Description: "kurad checks callers' Vault tokens, keeps the catalog and grants, wraps file keys\nwith Vault Transit and presigns storage URLs; it never handles payload bytes.\n\n" + broker.ConfigHelp,
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
		fmt.Fprintln(os.Stderr, "kurad:", err)
		os.Exit(1)
	}
}
