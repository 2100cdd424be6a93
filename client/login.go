package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/vault"
)

// Login methods 'dozo login' knows.
const (
	MethodUserpass = "userpass" // Vault's userpass auth method
	MethodLDAP     = "ldap"     // Vault's LDAP auth method
	MethodToken    = "token"    // an existing Vault token, from a login elsewhere
)

// LoginMethods are the values of LoginOptions.Method.
var LoginMethods = []string{MethodUserpass, MethodLDAP, MethodOIDC, MethodToken}

// LoginOptions say how to log in to Vault, dozo's identity provider.
type LoginOptions struct {
	VaultAddr   string
	VaultCACert string // PEM file; empty for the system roots
	Method      string // MethodUserpass (default) or MethodLDAP
	Mount       string // the auth method's mount; default the method's name
	Username    string
	Password    string // sent to Vault only; never stored
	// MFACode is the one-time code of a login MFA factor, if Vault asks
	// for one; when empty, PromptMFA is asked for it.
	MFACode   string
	PromptMFA func(m vault.MFAMethod) (string, error)
}

// VaultLogin logs in with a user name and password on Vault's userpass or
// LDAP auth method and returns the token, completing a login MFA step if
// Vault asks for one. The password and code go to Vault and nowhere else;
// dozod only ever sees the token.
func VaultLogin(ctx context.Context, o LoginOptions) (string, error) {
	const op = "logging in to Vault"
	if o.VaultAddr == "" {
		return "", hintError(op, "pass --vault-addr or set VAULT_ADDR", errors.New("no Vault address"))
	}
	method := o.Method
	if method == "" {
		method = MethodUserpass
	}
	if method != MethodUserpass && method != MethodLDAP {
		return "", hintError(op, "use --method userpass or --method ldap", fmt.Errorf("no password login for method %q", method))
	}
	vc, err := vault.New(vault.Config{Address: o.VaultAddr, CACert: o.VaultCACert, Timeout: 30 * time.Second})
	if err != nil {
		return "", opError(op, err)
	}
	r, err := vc.PasswordLogin(ctx, method, o.Mount, o.Username, o.Password)
	if err != nil {
		return "", loginError(op, err, "check the user name and password")
	}
	if r.MFA == nil {
		return r.Token, nil
	}
	return completeMFA(ctx, vc, o, r.MFA)
}

// completeMFA answers a login MFA requirement with the first factor that
// takes a code (TOTP), or else the first push factor.
func completeMFA(ctx context.Context, vc *vault.Client, o LoginOptions, req *vault.MFARequirement) (string, error) {
	const op = "completing the login's second factor"
	if len(req.Methods) == 0 {
		return "", opError(op, errors.New("Vault asks for a second factor but names none"))
	}
	m := req.Methods[0]
	for _, c := range req.Methods {
		if c.UsesPasscode {
			m = c
			break
		}
	}
	code := ""
	if m.UsesPasscode {
		code = strings.TrimSpace(o.MFACode)
		if code == "" {
			if o.PromptMFA == nil {
				return "", hintError(op, "pass the one-time code with --mfa-code", errors.New("Vault asks for a one-time code"))
			}
			var err error
			if code, err = o.PromptMFA(m); err != nil {
				return "", hintError(op, "pass the one-time code with --mfa-code", err)
			}
		}
	}
	tok, err := vc.ValidateMFA(ctx, req.RequestID, m.ID, code)
	if err != nil {
		return "", loginError(op, err, "check the one-time code (codes change every 30 seconds) and log in again")
	}
	return tok, nil
}

func loginError(op string, err error, hint string) error {
	switch {
	case errors.Is(err, vault.ErrPermissionDenied):
		return hintError(op, hint, errors.New("Vault refused the credentials"))
	case errors.Is(err, vault.ErrUnavailable):
		return hintError(op, "check --vault-addr / VAULT_ADDR and that Vault is up", err)
	}
	return opError(op, err)
}

// RevokeToken asks Vault to revoke token (best effort at logout), so a copy
// of it that leaked is useless too. The token goes to Vault under the same
// rule as a login (vault.New): https, or plain HTTP to this machine only.
func RevokeToken(ctx context.Context, vaultAddr, vaultCACert, token string) error {
	if vaultAddr == "" || token == "" {
		return nil
	}
	vc, err := vault.New(vault.Config{Address: vaultAddr, CACert: vaultCACert, Token: token, Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	return vc.RevokeSelf(ctx)
}
