package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/dozo-vault/dozo/client"
)

func loginCommand() *cli.Command {
	return &cli.Command{
		Name:  "login",
		Usage: "log in to Vault and keep the token for later commands",
		Description: "Logs in with Vault's userpass method. The password goes to Vault only; the\n" +
			"token Vault returns is stored 0600 in the config directory and sent to dozod\n" +
			"with every request. On a terminal the password is prompted for without echo.\n\n" +
			"EXAMPLES:\n" +
			"   dozo login --username alice --vault-addr https://vault.example.org:8200\n" +
			"   printf '%s\\n' \"$PASSWORD\" | dozo login -u alice --password-stdin   # scripts",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "method", Value: "userpass", Usage: "login `METHOD`: userpass or oidc (single sign-on in a browser, or --device)"},
			&cli.StringFlag{Name: "username", Aliases: []string{"u"}, EnvVars: []string{"DOZO_USERNAME"}, Usage: "Vault user `NAME` (userpass)"},
			&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from the first line of standard input"},
			&cli.StringFlag{Name: "vault-addr", EnvVars: []string{"VAULT_ADDR"}, Usage: "Vault's `URL`"},
			&cli.StringFlag{Name: "vault-ca-cert", EnvVars: []string{"VAULT_CACERT"}, Usage: "PEM `FILE` of Vault's CA (default: system roots)"},
			&cli.StringFlag{Name: "mount", Value: "userpass", Usage: "userpass auth `MOUNT` in Vault"},
			jsonFlag,
		}, oidcLoginFlags()...),
		Action: runLogin,
	}
}

func runLogin(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	d, err := configDir(c)
	if err != nil {
		return err
	}
	switch c.String("method") {
	case client.MethodOIDC:
		return runLoginOIDC(c, d)
	case "userpass":
	default:
		return &client.Error{Op: "logging in", Err: fmt.Errorf("unknown login method %q", c.String("method")), Hint: "use --method userpass or oidc"}
	}
	user := c.String("username")
	if user == "" {
		return &client.Error{Op: "logging in", Err: errors.New("no user name"), Hint: "pass --username"}
	}
	pw, err := readPassword(c, user)
	if err != nil {
		return err
	}
	tok, err := client.VaultLogin(c.Context, client.LoginOptions{
		VaultAddr: c.String("vault-addr"), VaultCACert: c.String("vault-ca-cert"),
		Mount: c.String("mount"), Username: user, Password: pw,
	})
	pw = ""
	if err != nil {
		return err
	}
	l := client.Login{Username: user, VaultAddr: c.String("vault-addr"), Broker: brokerURL(c, d), At: time.Now().UTC()}
	if err := d.SaveLogin(tok, l); err != nil {
		return err
	}
	// Tell the user how dozod sees them, if a broker is configured; the
	// login itself succeeded either way.
	out := struct {
		Username  string   `json:"username"`
		Roles     []string `json:"roles,omitempty"`
		ConfigDir string   `json:"config_dir"`
		Broker    string   `json:"broker,omitempty"`
		TokenTTL  int64    `json:"token_ttl_seconds,omitempty"`
	}{Username: user, ConfigDir: d.Path, Broker: l.Broker}
	if l.Broker != "" {
		if cl, err := clientFor(c, d, tok); err == nil {
			if u, err := cl.WhoAmI(c.Context); err == nil {
				out.Roles, out.TokenTTL = u.Roles, u.TokenTTL
			} else {
				fmt.Fprintf(stderr(c), "dozo: logged in to Vault, but dozod did not confirm: %s\n", client.Format(err, c.Bool("debug")))
			}
		}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), out)
	}
	fmt.Fprintf(stdout(c), "Logged in as %s", user)
	if len(out.Roles) > 0 {
		fmt.Fprintf(stdout(c), " (roles: %s)", strings.Join(out.Roles, ", "))
	}
	if out.TokenTTL > 0 {
		fmt.Fprintf(stdout(c), "; token valid for %s", time.Duration(out.TokenTTL)*time.Second)
	}
	fmt.Fprintf(stdout(c), ".\nToken stored in %s (readable by you only).\n", d.Path)
	return nil
}

// readPassword gets the password from stdin (--password-stdin) or a
// no-echo prompt on the terminal. It never falls back to echoing input.
func readPassword(c *cli.Context, user string) (string, error) {
	const op = "reading the password"
	if c.Bool("password-stdin") {
		line, err := bufio.NewReader(c.App.Reader).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", &client.Error{Op: op, Err: errors.New("nothing on standard input"), Hint: "pipe the password in, e.g. printf '%s\\n' \"$PW\" | dozo login ..."}
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", &client.Error{Op: op, Err: errors.New("no terminal to prompt on"), Hint: "use --password-stdin"}
	}
	defer tty.Close()
	fmt.Fprintf(tty, "Vault password for %s: ", user)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", &client.Error{Op: op, Err: err, Hint: "use --password-stdin"}
	}
	return string(b), nil
}

func whoamiCommand() *cli.Command {
	return &cli.Command{
		Name:  "whoami",
		Usage: "show who dozod thinks you are, your roles and your registered key",
		Description: "Asks dozod about the stored login token and compares the age recipient\n" +
			"registered there with your local identity.\n\n" +
			"EXAMPLES:\n" +
			"   dozo whoami\n" +
			"   dozo whoami --json | jq -r .name",
		Flags:  []cli.Flag{jsonFlag},
		Action: runWhoami,
	}
}

func runWhoami(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	cl, d, err := newClient(c)
	if err != nil {
		return err
	}
	u, err := cl.WhoAmI(c.Context)
	if err != nil {
		return &client.Error{Op: "asking dozod who you are", Err: err}
	}
	local := ""
	if id, err := d.Identity(); err == nil {
		local = id.Public
	}
	if c.Bool("json") {
		return printJSON(stdout(c), struct {
			Name              string   `json:"name"`
			Roles             []string `json:"roles"`
			Recipient         string   `json:"recipient,omitempty"`
			LocalRecipient    string   `json:"local_recipient,omitempty"`
			RecipientMatches  bool     `json:"recipient_matches"`
			TokenTTL          int64    `json:"token_ttl_seconds,omitempty"`
			Broker            string   `json:"broker"`
			ConfigurationPath string   `json:"config_dir"`
			Frozen            bool     `json:"frozen,omitempty"`
		}{u.Name, u.Roles, u.Recipient, local, local != "" && local == u.Recipient, u.TokenTTL, cl.Broker(), d.Path, u.Frozen})
	}
	w := table(stdout(c))
	fmt.Fprintf(w, "user\t%s\n", u.Name)
	fmt.Fprintf(w, "roles\t%s\n", joinOr(u.Roles, "(none)"))
	if u.Frozen {
		fmt.Fprintf(w, "FROZEN\tby an administrator: everything but whoami is refused\n")
	}
	fmt.Fprintf(w, "broker\t%s\n", cl.Broker())
	if u.TokenTTL > 0 {
		fmt.Fprintf(w, "token expires in\t%s\n", time.Duration(u.TokenTTL)*time.Second)
	}
	switch {
	case u.Recipient == "" && local == "":
		fmt.Fprintf(w, "key\tnone (run 'dozo keygen' and 'dozo key register' to fetch files)\n")
	case u.Recipient == "":
		fmt.Fprintf(w, "key\tlocal identity not registered (run 'dozo key register')\n")
	case local == "":
		fmt.Fprintf(w, "key\t%s registered, but no local identity in %s\n", short(u.Recipient), d.Path)
	case local != u.Recipient:
		fmt.Fprintf(w, "key\tMISMATCH: dozod has %s, your identity is %s (run 'dozo key register')\n", short(u.Recipient), short(local))
	default:
		fmt.Fprintf(w, "key\t%s (registered, matches your identity)\n", short(local))
	}
	return w.Flush()
}

// short abbreviates a recipient; hybrid ones are ~2000 characters.
func short(r string) string {
	if len(r) <= 40 {
		return r
	}
	return r[:24] + "..." + r[len(r)-8:]
}

func logoutCommand() *cli.Command {
	return &cli.Command{
		Name:  "logout",
		Usage: "revoke the stored token at Vault and forget it",
		Description: "Revokes the token at Vault (best effort, so a copy of it is useless too)\n" +
			"and deletes it from the config directory. Your age identity stays.\n\n" +
			"EXAMPLES:\n" +
			"   dozo logout",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "vault-addr", EnvVars: []string{"VAULT_ADDR"}, Usage: "Vault's `URL` (default: the one used at login)"},
			&cli.StringFlag{Name: "vault-ca-cert", EnvVars: []string{"VAULT_CACERT"}, Usage: "PEM `FILE` of Vault's CA"},
			jsonFlag,
		},
		Action: runLogout,
	}
}

func runLogout(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	d, err := configDir(c)
	if err != nil {
		return err
	}
	revoked := false
	if tok, err := d.Token(); err == nil {
		addr := d.Login().VaultAddr
		if addr == "" {
			addr = c.String("vault-addr")
		}
		if err := client.RevokeToken(c.Context, addr, c.String("vault-ca-cert"), tok); err != nil {
			fmt.Fprintf(stderr(c), "dozo: could not revoke the token at Vault (%v); forgetting it anyway\n", err)
		} else {
			revoked = addr != ""
		}
	}
	had, err := d.Logout()
	if err != nil {
		return &client.Error{Op: "logging out", Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), map[string]bool{"logged_out": had, "revoked": revoked})
	}
	if had {
		fmt.Fprintln(stdout(c), "Logged out.")
	} else {
		fmt.Fprintln(stdout(c), "Not logged in.")
	}
	return nil
}

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "create your age identity (key pair) in the config directory",
		Description: "Creates identity.age (0600) in the config directory. By default it is a\n" +
			"post-quantum ML-KEM-768+X25519 hybrid key (recipient \"age1pq1...\"), which keeps\n" +
			"files safe even from a future quantum computer; --classic makes an X25519 key\n" +
			"(\"age1...\"). Then run 'dozo key register' so dozod wraps file keys for it.\n" +
			"Back the file up: without it you cannot open fetched --raw files.\n\n" +
			"EXAMPLES:\n" +
			"   dozo keygen && dozo key register\n" +
			"   dozo keygen --classic --force   # replace the key (register it again!)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "classic", Usage: "make an X25519 key instead of the post-quantum hybrid"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing identity"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 0, "no arguments"); err != nil {
				return err
			}
			d, err := configDir(c)
			if err != nil {
				return err
			}
			id, err := d.Keygen(c.Bool("classic"), c.Bool("force"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(stdout(c), map[string]string{"identity_file": d.IdentityPath(), "recipient": id.Public})
			}
			fmt.Fprintf(stdout(c), "Created %s\nPublic key: %s\nNext: dozo key register\n", d.IdentityPath(), id.Public)
			return nil
		},
	}
}

func keyCommand() *cli.Command {
	return &cli.Command{
		Name:  "key",
		Usage: "manage the public key dozod wraps file keys for",
		Description: "EXAMPLES:\n" +
			"   dozo key register",
		Subcommands: []*cli.Command{{
			Name:  "register",
			Usage: "send your identity's public recipient to dozod",
			Description: "dozod wraps the key of every file you fetch for this recipient; only your\n" +
				"identity file can unwrap it. Run it after 'dozo keygen' (and after replacing\n" +
				"the identity). The private key never leaves this machine.\n\n" +
				"EXAMPLES:\n" +
				"   dozo key register\n" +
				"   dozo key register --json",
			Flags: []cli.Flag{jsonFlag},
			Action: func(c *cli.Context) error {
				if err := needArgs(c, 0, "no arguments"); err != nil {
					return err
				}
				cl, d, err := newClient(c)
				if err != nil {
					return err
				}
				id, err := d.Identity()
				if err != nil {
					return &client.Error{Op: "registering your key", Err: err}
				}
				u, err := cl.SetRecipient(c.Context, id.Public)
				if err != nil {
					return &client.Error{Op: "registering your key", Err: err}
				}
				if c.Bool("json") {
					return printJSON(stdout(c), u)
				}
				fmt.Fprintf(stdout(c), "Registered %s for %s.\n", short(id.Public), u.Name)
				return nil
			},
		}},
	}
}
