package main

import "github.com/urfave/cli/v2"

func scrubCommand() *cli.Command {
	return &cli.Command{Name: "scrub", Hidden: true, Flags: []cli.Flag{jsonFlag}}
}
