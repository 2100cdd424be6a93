package client

import (
	"context"
	"errors"
	"time"

	"github.com/dozo-vault/dozo/vault"
)

// LoginOptions say how to log in to Vault, dozo's identity provider.
type LoginOptions struct {
	VaultAddr   string
	VaultCACert string // PEM file; empty for the system roots
	Mount       string // userpass mount; default "userpass"
	Username    string
	Password    string // sent to Vault only; never stored
}

// VaultLogin logs in with Vault userpass and returns the token. The
// password goes to Vault and nowhere else; dozod only ever sees the token.
func VaultLogin(ctx context.Context, o LoginOptions) (string, error) {
	const op = "logging in to Vault"
	if o.VaultAddr == "" {
		return "", hintError(op, "pass --vault-addr or set VAULT_ADDR", errors.New("no Vault address"))
	}
	vc, err := vault.New(vault.Config{Address: o.VaultAddr, CACert: o.VaultCACert, Timeout: 30 * time.Second})
	if err != nil {
		return "", opError(op, err)
	}
	tok, err := vc.UserpassLogin(ctx, o.Mount, o.Username, o.Password)
	switch {
	case errors.Is(err, vault.ErrPermissionDenied):
		return "", hintError(op, "check the user name and password", errors.New("Vault refused the credentials"))
	case errors.Is(err, vault.ErrUnavailable):
		return "", hintError(op, "check --vault-addr / VAULT_ADDR and that Vault is up", err)
	case err != nil:
		return "", opError(op, err)
	}
	return tok, nil
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
