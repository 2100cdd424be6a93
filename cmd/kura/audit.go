package main

import "github.com/urfave/cli/v2"

func auditCommand() *cli.Command {
	return &cli.Command{Name: "audit", Hidden: true, Description: "EXAMPLES:\n   kura audit (not yet built)", Flags: []cli.Flag{jsonFlag}}
}
