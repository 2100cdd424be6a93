package main

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
)

// oidcLoginFlags are the login command's flags for --method oidc.
func oidcLoginFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "role", EnvVars: []string{"DOZO_OIDC_ROLE"}, Usage: "oidc: Vault OIDC/JWT `ROLE` (default: the mount's default role)"},
		&cli.IntFlag{Name: "callback-port", Value: client.DefaultOIDCCallbackPort, Usage: "oidc: loopback `PORT` the browser returns to (http://localhost:PORT/oidc/callback)"},
		&cli.BoolFlag{Name: "no-browser", Usage: "oidc: only print the URL, do not start a browser here"},
		&cli.BoolFlag{Name: "device", Usage: "oidc: log in with a code entered on any device (OAuth device flow; no browser or port needed here)"},
		&cli.StringFlag{Name: "oidc-issuer", EnvVars: []string{"DOZO_OIDC_ISSUER"}, Usage: "oidc --device: the OpenID Provider's issuer `URL`"},
		&cli.StringFlag{Name: "oidc-client-id", EnvVars: []string{"DOZO_OIDC_CLIENT_ID"}, Usage: "oidc --device: the `ID` of dozo's client at the provider"},
		&cli.StringFlag{Name: "oidc-client-secret-file", EnvVars: []string{"DOZO_OIDC_CLIENT_SECRET_FILE"}, Usage: "oidc --device: `FILE` holding that client's secret, if it has one"},
		&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "oidc: how long to wait for the login in the browser"},
	}
}

// runLoginOIDC logs in with Vault's OIDC auth method (in a browser, here or
// on any machine) or, with --device, with the device flow at the OpenID
// Provider and Vault's JWT auth method; then it stores the token like any
// login.
func runLoginOIDC(c *cli.Context, d *client.Dir) error {
	mount := ""
	if c.IsSet("mount") {
		mount = c.String("mount")
	}
	var tok string
	var err error
	if c.Bool("device") {
		secret := ""
		if f := c.String("oidc-client-secret-file"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return &client.Error{Op: i18n.T("reading the OIDC client secret"), Err: err}
			}
			secret = strings.TrimSpace(string(b))
		}
		tok, err = client.OIDCDeviceLogin(c.Context, client.OIDCDeviceOptions{
			VaultAddr: c.String("vault-addr"), VaultCACert: c.String("vault-ca-cert"),
			Mount: mount, Role: c.String("role"),
			Issuer: c.String("oidc-issuer"), ClientID: c.String("oidc-client-id"), ClientSecret: secret,
			Timeout: durationIfSet(c, "timeout"),
			Show: func(uri, code, complete string) {
				w := stderr(c)
				i18n.Fprintf(w, "To log in, open %s on any device and enter the code\n\n    %s\n\n", uri, code)
				if complete != "" {
					i18n.Fprintf(w, "(or open %s)\n", complete)
				}
				i18n.Fprintln(w, "Waiting for the login to be confirmed ...")
			},
		})
	} else {
		port := c.Int("callback-port")
		tok, err = client.OIDCLogin(c.Context, client.OIDCOptions{
			VaultAddr: c.String("vault-addr"), VaultCACert: c.String("vault-ca-cert"),
			Mount: mount, Role: c.String("role"), CallbackPort: port,
			Pasted: c.App.Reader, Timeout: c.Duration("timeout"), Page: oidcPage,
			Show: func(u string) {
				w := stderr(c)
				i18n.Fprintf(w, "Open this URL in a browser to log in:\n\n    %s\n\n", u)
				if !c.Bool("no-browser") && openBrowser(u) {
					i18n.Fprintln(w, "(a browser was started for it)")
				}
				i18n.Fprintf(w, "Waiting up to %s. If the browser runs on another machine, either forward the\n"+
					"port first (ssh -L %d:localhost:%d this-host), or, once the browser shows a\n"+
					"page that cannot be reached at http://localhost:%d/oidc/callback?..., paste\n"+
					"that page's address here and press Enter. Or use --device.\n", c.Duration("timeout"), port, port, port)
			},
		})
	}
	if err != nil {
		return err
	}
	l := client.Login{Method: client.MethodOIDC, Mount: c.String("mount"), VaultAddr: c.String("vault-addr"), Broker: brokerURL(c, d), At: time.Now().UTC()}
	out := struct {
		Username  string   `json:"username,omitempty"`
		Roles     []string `json:"roles,omitempty"`
		ConfigDir string   `json:"config_dir"`
		Broker    string   `json:"broker,omitempty"`
		TokenTTL  int64    `json:"token_ttl_seconds,omitempty"`
	}{ConfigDir: d.Path, Broker: l.Broker}
	// The user name is whatever dozod makes of the token (the entity
	// alias on the login's mount): ask it before saving, if it is known.
	if l.Broker != "" {
		if cl, err := clientFor(c, d, tok); err == nil {
			if u, err := cl.WhoAmI(c.Context); err == nil {
				out.Username, out.Roles, out.TokenTTL = u.Name, u.Roles, u.TokenTTL
				l.Username = u.Name
			} else {
				i18n.Fprintf(stderr(c), "dozo: logged in to Vault, but dozod did not confirm: %s\n", errorLine(err, c.Bool("debug")))
			}
		}
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
	if out.Username != "" {
		i18n.Fprintf(stdout(c), "Logged in as %s", out.Username)
	} else {
		i18n.Fprintf(stdout(c), "Logged in to Vault")
	}
	if len(out.Roles) > 0 {
		i18n.Fprintf(stdout(c), " (roles: %s)", strings.Join(out.Roles, ", "))
	}
	if out.TokenTTL > 0 {
		i18n.Fprintf(stdout(c), "; token valid for %s", time.Duration(out.TokenTTL)*time.Second)
	}
	i18n.Fprintf(stdout(c), ".\nToken stored in %s (readable by you only).\n", d.Path)
	return nil
}

func durationIfSet(c *cli.Context, name string) time.Duration {
	if c.IsSet(name) {
		return c.Duration(name)
	}
	return 0
}

// openBrowser starts the desktop's browser on u when there is a desktop
// (a display on Linux and the BSDs, always on macOS); it reports whether
// it tried. The URL is one argument, never shell text.
func openBrowser(u string) bool {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return false
		}
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return false
	}
	go cmd.Wait()
	return true
}

// oidcPage is what the browser shows once an OIDC login has ended, in the
// chosen language.
func oidcPage(err error) string {
	if err != nil {
		return i18n.Sprintf("The dozo login failed: %v", err)
	}
	return i18n.T("Logged in to dozo. You can close this window.")
}
