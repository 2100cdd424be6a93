package main

import "github.com/urfave/cli/v2"

func scrubCommand() *cli.Command {
	return &cli.Command{Name: "scrub", Hidden: true, Description: "EXAMPLES:\n   kura scrub (not yet built)", Flags: []cli.Flag{jsonFlag}}
}
