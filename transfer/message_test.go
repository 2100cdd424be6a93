package transfer

import "github.com/dozo-vault/dozo/client"

// message is what a failure says to the person who ran the command: what
// failed and why, then what to do (the command only renders these in its
// language).
func message(err error) string {
	f := client.Describe(err)
	if f.Hint == "" {
		return f.What
	}
	return f.What + " (" + f.Hint + ")"
}
