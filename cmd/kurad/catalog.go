package main

import "github.com/urfave/cli/v2"

func catalogCommand() *cli.Command {
	return &cli.Command{Name: "catalog", Hidden: true}
}
