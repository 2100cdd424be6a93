package main

import "github.com/urfave/cli/v2"

func adminCommand() *cli.Command {
	return &cli.Command{Name: "admin", Hidden: true, Flags: []cli.Flag{jsonFlag}}
}
