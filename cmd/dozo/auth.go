package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/vault"
)

func loginCommand() *cli.Command {
	return &cli.Command{
		Name:  "login",
		Usage: "log in to Vault and keep the token for later commands",
		Description: "Logs in with one of Vault's auth methods (--method):\n" +
			"   userpass  a Vault user name and password (the default)\n" +
			"   ldap      your directory (LDAP) user name and password, checked by Vault\n" +
			"   oidc      the centre's single sign-on (OpenID Connect) through Vault: a browser\n" +
			"             here, a URL to open elsewhere, or --device with a short code\n" +
			"   token     a Vault token you already have, read from standard input (batch\n" +
			"             jobs); it must come from a login dozod accepts, which is checked\n" +
			"The default method is DOZO_LOGIN_METHOD, else the method of the last login.\n" +
			"The password goes to Vault only; the token Vault returns is stored 0600 in the\n" +
			"config directory and sent to dozod with every request. On a terminal a missing\n" +
			"user name, the password and a second factor's one-time code (if Vault's login\n" +
			"MFA asks for one) are prompted for, the password without echo.\n\n" +
			"EXAMPLES:\n" +
			"   dozo login --username alice --vault-addr https://vault.example.org:8200\n" +
			"   dozo login --method ldap -u alice\n" +
			"   dozo login --method oidc                                            # single sign-on\n" +
			"   dozo login --method oidc --device --oidc-issuer https://sso.example.org --oidc-client-id dozo\n" +
			"   printf '%s\\n' \"$PASSWORD\" | dozo login -u alice --password-stdin   # scripts\n" +
			"   printf '%s\\n' \"$VAULT_TOKEN\" | dozo login --method token           # batch jobs",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "method", EnvVars: []string{"DOZO_LOGIN_METHOD"}, Usage: "login `METHOD`: userpass, ldap, oidc or token (default: the last login's, else userpass)"},
			&cli.StringFlag{Name: "username", Aliases: []string{"u"}, EnvVars: []string{"DOZO_USERNAME"}, Usage: "user `NAME` (prompted for if missing)"},
			&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from the first line of standard input"},
			&cli.StringFlag{Name: "mfa-code", Usage: "one-time `CODE` for Vault's login MFA, if it asks for one"},
			&cli.StringFlag{Name: "vault-addr", EnvVars: []string{"VAULT_ADDR"}, Usage: "Vault's `URL`"},
			&cli.StringFlag{Name: "vault-ca-cert", EnvVars: []string{"VAULT_CACERT"}, Usage: "PEM `FILE` of Vault's CA (default: system roots)"},
			&cli.StringFlag{Name: "mount", Usage: "the auth method's `MOUNT` path in Vault (default: the method's name)"},
			jsonFlag,
		}, oidcLoginFlags()...),
		Action: runLogin,
	}
}

// loginMethod is --method, else the last login's method, else userpass.
func loginMethod(c *cli.Context, d *client.Dir) (string, error) {
	m := c.String("method")
	if m == "" {
		m = d.Login().Method
	}
	if m == "" {
		m = client.MethodUserpass
	}
	if !slices.Contains(client.LoginMethods, m) {
		return "", &client.Error{Op: i18n.T("logging in"), Err: i18n.Errorf("unknown login method %q", m), Hint: i18n.Sprintf("use --method %s", strings.Join(client.LoginMethods, ", "))}
	}
	return m, nil
}

func runLogin(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	d, err := configDir(c)
	if err != nil {
		return err
	}
	method, err := loginMethod(c, d)
	if err == nil && method == client.MethodOIDC {
		return runLoginOIDC(c, d)
	}
	if err != nil {
		return err
	}
	user, tok := c.String("username"), ""
	if method == client.MethodToken {
		if tok, err = readLine(c, "reading the token", "pipe the token in, e.g. printf '%s\\n' \"$VAULT_TOKEN\" | dozo login --method token"); err != nil {
			return err
		}
	} else {
		if user == "" {
			if user, err = prompt(i18n.T("User name: "), false); err != nil {
				return &client.Error{Op: i18n.T("reading the user name"), Err: err, Hint: i18n.T("pass --username")}
			}
		}
		pw, err := readPassword(c, user)
		if err != nil {
			return err
		}
		tok, err = client.VaultLogin(c.Context, client.LoginOptions{
			VaultAddr: c.String("vault-addr"), VaultCACert: c.String("vault-ca-cert"),
			Method: method, Mount: c.String("mount"), Username: user, Password: pw,
			MFACode: c.String("mfa-code"),
			PromptMFA: func(m vault.MFAMethod) (string, error) {
				return prompt(i18n.Sprintf("One-time code (%s %s): ", m.Type, m.Name), false)
			},
		})
		pw = ""
		if err != nil {
			return err
		}
	}
	l := client.Login{Username: user, Method: method, Mount: c.String("mount"), VaultAddr: c.String("vault-addr"), Broker: brokerURL(c, d), At: time.Now().UTC()}
	// Tell the user how dozod sees them, if a broker is configured. A
	// password login succeeded either way; a token is kept only if dozod
	// takes it for a user.
	out := struct {
		Username  string   `json:"username"`
		Method    string   `json:"method"`
		Roles     []string `json:"roles,omitempty"`
		Groups    []string `json:"groups,omitempty"`
		ConfigDir string   `json:"config_dir"`
		Broker    string   `json:"broker,omitempty"`
		TokenTTL  int64    `json:"token_ttl_seconds,omitempty"`
	}{Username: user, Method: method, ConfigDir: d.Path, Broker: l.Broker}
	var confirmErr error
	if l.Broker != "" {
		cl, err := clientFor(c, d, tok)
		if err == nil {
			var u *api.User
			if u, err = cl.WhoAmI(c.Context); err == nil {
				out.Username, out.Roles, out.Groups, out.TokenTTL = u.Name, u.Roles, u.Groups, u.TokenTTL
				l.Username = u.Name
			}
		}
		confirmErr = err
	}
	if method == client.MethodToken {
		switch {
		case l.Broker == "":
			return &client.Error{Op: i18n.T("checking the token"), Err: i18n.New("no dozod to check it with"), Hint: i18n.T("pass --broker or set DOZO_BROKER")}
		case confirmErr != nil:
			return &client.Error{Op: i18n.T("checking the token with dozod"), Err: confirmErr}
		}
	} else if confirmErr != nil {
		i18n.Fprintf(stderr(c), "dozo: logged in to Vault, but dozod did not confirm: %s\n", errorLine(confirmErr, c.Bool("debug")))
	}
	if err := d.SaveLogin(tok, l); err != nil {
		return err
	}
	if l.Broker != "" {
		if cl, err := clientFor(c, d, tok); err == nil {
			showWarnings(c, cl, d) // the day's warnings at login, not on the next command
		}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), out)
	}
	i18n.Fprintf(stdout(c), "Logged in as %s (%s)", out.Username, method)
	if len(out.Roles) > 0 {
		i18n.Fprintf(stdout(c), "; roles: %s", strings.Join(out.Roles, ", "))
	}
	if out.TokenTTL > 0 {
		i18n.Fprintf(stdout(c), "; token valid for %s", time.Duration(out.TokenTTL)*time.Second)
	}
	i18n.Fprintf(stdout(c), ".\nToken stored in %s (readable by you only).\n", d.Path)
	return nil
}

// prompt asks on the terminal and reads a line, echoed unless secret.
func prompt(question string, secret bool) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", i18n.New("no terminal to prompt on")
	}
	defer tty.Close()
	fmt.Fprint(tty, question)
	if secret {
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		return string(b), err
	}
	line, err := bufio.NewReader(tty).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	if line = strings.TrimSpace(line); line == "" {
		return "", i18n.New("nothing entered")
	}
	return line, nil
}

// readLine reads the first line of standard input.
func readLine(c *cli.Context, op, hint string) (string, error) {
	line, err := bufio.NewReader(c.App.Reader).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", &client.Error{Op: op, Err: i18n.New("nothing on standard input"), Hint: hint}
	}
	if line = strings.TrimRight(line, "\r\n"); line == "" {
		return "", &client.Error{Op: op, Err: i18n.New("empty first line on standard input"), Hint: hint}
	}
	return line, nil
}

// readPassword gets the password from stdin (--password-stdin) or a
// no-echo prompt on the terminal. It never falls back to echoing input.
func readPassword(c *cli.Context, user string) (string, error) {
	op := i18n.T("reading the password")
	if c.Bool("password-stdin") {
		return readLine(c, op, "pipe the password in, e.g. printf '%s\\n' \"$PW\" | dozo login ...")
	}
	pw, err := prompt(i18n.Sprintf("Vault password for %s: ", user), true)
	if err != nil {
		return "", &client.Error{Op: op, Err: err, Hint: i18n.T("use --password-stdin")}
	}
	return pw, nil
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
		return &client.Error{Op: i18n.T("asking dozod who you are"), Err: err}
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
			Mount             string   `json:"mount,omitempty"`
			EntityID          string   `json:"entity_id,omitempty"`
			Groups            []string `json:"groups"`
		}{u.Name, u.Roles, u.Recipient, local, local != "" && local == u.Recipient, u.TokenTTL, cl.Broker(), d.Path, u.Frozen,
			u.Mount, u.EntityID, nonNil(u.Groups)})
	}
	w := table(stdout(c))
	i18n.Fprintf(w, "user\t%s\n", u.Name)
	if u.Mount != "" {
		i18n.Fprintf(w, "login\t%s (Vault auth mount), identity entity %s\n", u.Mount, u.EntityID)
	}
	i18n.Fprintf(w, "groups\t%s\n", joinOr(u.Groups, i18n.T("(none that dozod maps to a role)")))
	i18n.Fprintf(w, "roles\t%s\n", joinOr(u.Roles, i18n.T("(none)")))
	if u.Frozen {
		i18n.Fprintf(w, "FROZEN\tby an administrator: everything but whoami is refused\n")
	}
	i18n.Fprintf(w, "broker\t%s\n", cl.Broker())
	if u.TokenTTL > 0 {
		i18n.Fprintf(w, "token expires in\t%s\n", time.Duration(u.TokenTTL)*time.Second)
	}
	switch {
	case u.Recipient == "" && local == "":
		i18n.Fprintf(w, "key\tnone (run 'dozo keygen' and 'dozo key register' to fetch files)\n")
	case u.Recipient == "":
		i18n.Fprintf(w, "key\tlocal identity not registered (run 'dozo key register')\n")
	case local == "":
		i18n.Fprintf(w, "key\t%s registered, but no local identity in %s\n", short(u.Recipient), d.Path)
	case local != u.Recipient:
		i18n.Fprintf(w, "key\tMISMATCH: dozod has %s, your identity is %s (run 'dozo key register')\n", short(u.Recipient), short(local))
	default:
		i18n.Fprintf(w, "key\t%s (registered, matches your identity)\n", short(local))
	}
	return w.Flush()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
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
			i18n.Fprintf(stderr(c), "dozo: could not revoke the token at Vault (%v); forgetting it anyway\n", err)
		} else {
			revoked = addr != ""
		}
	}
	had, err := d.Logout()
	if err != nil {
		return &client.Error{Op: i18n.T("logging out"), Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), map[string]bool{"logged_out": had, "revoked": revoked})
	}
	if had {
		i18n.Fprintln(stdout(c), "Logged out.")
	} else {
		i18n.Fprintln(stdout(c), "Not logged in.")
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
			i18n.Fprintf(stdout(c), "Created %s\nPublic key: %s\nNext: dozo key register\n", d.IdentityPath(), id.Public)
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
					return &client.Error{Op: i18n.T("registering your key"), Err: err}
				}
				u, err := cl.SetRecipient(c.Context, id.Public)
				if err != nil {
					return &client.Error{Op: i18n.T("registering your key"), Err: err}
				}
				if c.Bool("json") {
					return printJSON(stdout(c), u)
				}
				i18n.Fprintf(stdout(c), "Registered %s for %s.\n", short(id.Public), u.Name)
				return nil
			},
		}},
	}
}
