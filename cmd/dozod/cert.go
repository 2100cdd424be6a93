package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/internal/selfsigned"
)

func genCertCommand() *cli.Command {
	return &cli.Command{
		Name:  "gen-cert",
		Usage: "make a self-signed ECDSA P-256 TLS server certificate (cert.pem; a leaf, not a CA) and key (key.pem, mode 0600)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "output directory", Required: true},
			&cli.StringFlag{Name: "host", Usage: "comma-separated IP addresses and DNS names", Value: "127.0.0.1"},
			&cli.DurationFlag{Name: "valid", Usage: "validity", Value: 365 * 24 * time.Hour},
		},
		Action: func(c *cli.Context) error {
			return genCert(c.String("dir"), c.String("host"), c.Duration("valid"))
		},
	}
}

// genCert writes a self-signed leaf certificate for dozod (see
// selfsigned.Leaf): clients pin exactly it (DOZO_CA_CERT), and it can
// vouch for no other host.
func genCert(dir, hosts string, valid time.Duration) error {
	cert, key, err := selfsigned.Leaf(hosts, valid)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "key.pem"), key, 0o600); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "cert.pem"), cert, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s\n", filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	return nil
}

// writeFile writes atomically with mode perm.
func writeFile(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
