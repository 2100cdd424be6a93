package main

import "github.com/urfave/cli/v2"

// datasetLifecycleCommands are `kura dataset rotate-key` and `delete`.
func datasetLifecycleCommands() []*cli.Command { return nil }
