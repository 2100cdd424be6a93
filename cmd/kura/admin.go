package main

import "github.com/urfave/cli/v2"

func adminCommand() *cli.Command {
	return &cli.Command{Name: "admin", Hidden: true, Description: "EXAMPLES:\n   kura admin (not yet built)", Flags: []cli.Flag{jsonFlag}}
}
