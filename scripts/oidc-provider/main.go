// Command dozo-oidc-provider runs a real OpenID Provider for dozo's dev
// stack and integration tests: zitadel's OpenID Provider library with its
// example login pages and in-memory storage, bound to a loopback address,
// with the users and client secrets of the dev stack instead of the
// example's built-in ones.
//
// It serves the authorization code flow (for Vault's OIDC auth method, a
// confidential client) and the device authorization grant (for the dozo
// CLI on a machine without a browser). It is for development only: state
// lives in memory, and the token encryption key is the example's.
//
// Configuration comes from the environment:
//
//	OIDC_LISTEN               127.0.0.1:PORT (loopback only)
//	OIDC_USERS_FILE           JSON {"id": {"ID":..., "Username":..., "Password":...}}
//	OIDC_VAULT_CLIENT_ID      client Vault uses (code flow), default "vault"
//	OIDC_VAULT_SECRET_FILE    its secret
//	OIDC_DEVICE_CLIENT_ID     client the dozo CLI uses (device grant), default "dozo"
//	OIDC_DEVICE_SECRET_FILE   its secret
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dozo-oidc-provider:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := os.Getenv("OIDC_LISTEN")
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("OIDC_LISTEN=%q: %v", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("OIDC_LISTEN=%q: not a loopback address", listen)
	}
	users, err := storage.StoreFromFile(os.Getenv("OIDC_USERS_FILE"))
	if err != nil {
		return fmt.Errorf("OIDC_USERS_FILE: %v", err)
	}
	vaultSecret, err := secret("OIDC_VAULT_SECRET_FILE")
	if err != nil {
		return err
	}
	deviceSecret, err := secret("OIDC_DEVICE_SECRET_FILE")
	if err != nil {
		return err
	}
	// Vault's redirect URIs are its CLI-style loopback callbacks and dozod's
	// web console callback (any port, see loopbackClient).
	storage.RegisterClients(
		storage.WebClient(env("OIDC_VAULT_CLIENT_ID", "vault"), vaultSecret,
			"http://localhost/oidc/callback", "https://localhost/ui/login/oidc/callback"),
		storage.DeviceClient(env("OIDC_DEVICE_CLIENT_ID", "dozo"), deviceSecret),
	)
	issuer := fmt.Sprintf("http://%s/", net.JoinHostPort(host, port))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	router := exampleop.SetupServer(issuer, loopbackStorage{storage.NewStorage(users)}, logger, false)
	logger.Info("listening", "issuer", issuer)
	err = (&http.Server{Addr: listen, Handler: router}).ListenAndServe()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func secret(k string) (string, error) {
	b, err := os.ReadFile(os.Getenv(k))
	if err != nil {
		return "", fmt.Errorf("%s: %v", k, err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < 16 {
		return "", fmt.Errorf("%s: secret shorter than 16 characters", k)
	}
	return s, nil
}

// loopbackStorage is the example storage, except that a client's
// registered loopback redirect URI matches any port on localhost and
// 127.0.0.1, as for a native app (RFC 8252, section 7.3): Vault's CLI-style
// OIDC login listens on a port of the user's choosing.
type loopbackStorage struct{ *storage.Storage }

func (s loopbackStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return loopbackClient{c}, nil
}

type loopbackClient struct{ op.Client }

func (c loopbackClient) RedirectURIGlobs() []string {
	var globs []string
	for _, u := range c.RedirectURIs() {
		for _, scheme := range []string{"http", "https"} {
			if rest, ok := strings.CutPrefix(u, scheme+"://localhost/"); ok {
				globs = append(globs, scheme+"://localhost:*/"+rest, scheme+"://127.0.0.1:*/"+rest)
			}
		}
	}
	return globs
}

func (c loopbackClient) PostLogoutRedirectURIGlobs() []string { return nil }
