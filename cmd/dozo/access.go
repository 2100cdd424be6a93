package main

import (
	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/internal/i18n"
)

// allowUnknownFlag lets grant, dataset member add and admin freeze --user
// name someone dozod has not seen log in. Without it such a name is
// refused with the closest known names, so a typo never grants to, or
// leaves unfrozen, the wrong account.
var allowUnknownFlag = &cli.BoolFlag{Name: "allow-unknown",
	Usage: "the user has not logged in to dozo yet: accept the name as given (pending until their first login)"}

// pendingNote is what a command adds for an entry made for a user who has
// not logged in yet.
func pendingNote(pending bool) string {
	if pending {
		return i18n.T(" Pending first login: nobody by that name has logged in yet.")
	}
	return ""
}
