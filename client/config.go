package client

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
)

// Errors the CLI turns into "do this first" hints.
var (
	ErrNotLoggedIn = errors.New("not logged in")
	ErrNoIdentity  = errors.New("no age identity")
)

// File names inside the config directory.
const (
	tokenFile    = "token"
	loginFile    = "login.json"
	identityFile = "identity.age"
	brokerCAFile = "broker-ca.pem"
	journalDir   = "uploads"
)

// Dir is dozo's local state directory (default ~/.config/dozo). It holds
// secrets — the login token, the age identity, upload journals with sealed
// file keys — so it is kept 0700 and every file in it 0600: only the user
// can read them, whatever their umask.
type Dir struct {
	Path string
}

// DefaultDirPath returns ~/.config/dozo (honouring XDG_CONFIG_HOME).
func DefaultDirPath() (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "dozo"), nil
}

// OpenDir creates path (and missing parents) if needed and makes sure the
// directory itself is 0700: a directory someone else can list or write
// would let them read or swap the identity.
func OpenDir(path string) (*Dir, error) {
	if path == "" {
		var err error
		if path, err = DefaultDirPath(); err != nil {
			return nil, hintError("finding the config directory", "pass --config-dir or set DOZO_CONFIG_DIR", err)
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, hintError("creating the config directory", "pass a writable --config-dir", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, hintError("opening the config directory", "pass a directory as --config-dir", fmt.Errorf("%s is not a directory", abs))
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(abs, 0o700); err != nil {
			return nil, hintError("securing the config directory", "make it 0700: chmod 700 "+abs, err)
		}
	}
	return &Dir{Path: abs}, nil
}

func (d *Dir) file(name string) string { return filepath.Join(d.Path, name) }

// JournalDir is the directory of upload journals inside d.
func (d *Dir) JournalDir() string { return d.file(journalDir) }

// WriteSecret replaces name atomically with data, mode 0600: a crash leaves
// the old or the new content, never a torn file, and the bytes are never
// readable by others, not even briefly.
func WriteSecret(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}

// readSecret reads a state file, refusing one that others may read: a
// token or identity that leaked to the group must be treated as exposed.
func readSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, hintError("reading "+path, "it must be readable by you only: chmod 600 "+path+" (and consider it exposed)",
			fmt.Errorf("permissions %v are too open", fi.Mode().Perm()))
	}
	return os.ReadFile(path)
}

// Login is what 'dozo login' remembers besides the token.
type Login struct {
	Username  string    `json:"username"`
	Method    string    `json:"method,omitempty"` // userpass, ldap or token
	Mount     string    `json:"mount,omitempty"`  // the auth mount, if not the method's name
	VaultAddr string    `json:"vault_addr"`
	Broker    string    `json:"broker,omitempty"`
	At        time.Time `json:"logged_in_at"`
}

// SaveLogin stores the Vault token (0600) and the login details.
func (d *Dir) SaveLogin(token string, l Login) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteSecret(d.file(tokenFile), []byte(token+"\n")); err != nil {
		return opError("saving the login token", err)
	}
	return opError("saving the login details", WriteSecret(d.file(loginFile), append(b, '\n')))
}

// Token returns the stored Vault token, or ErrNotLoggedIn.
func (d *Dir) Token() (string, error) {
	b, err := readSecret(d.file(tokenFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNotLoggedIn
	}
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", ErrNotLoggedIn
	}
	return t, nil
}

// Login returns the stored login details (zero if absent).
func (d *Dir) Login() Login {
	var l Login
	if b, err := readSecret(d.file(loginFile)); err == nil {
		json.Unmarshal(b, &l)
	}
	return l
}

// Logout forgets the token and login details. It reports whether there
// was a token to forget.
func (d *Dir) Logout() (bool, error) {
	err := os.Remove(d.file(tokenFile))
	had := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.Remove(d.file(loginFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return had, err
	}
	if err := os.Remove(d.file(brokerCAFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return had, err
	}
	return had, nil
}

// SaveBrokerCA keeps a copy (0600) of the PEM file given with --ca-cert
// at login, so later commands to the same broker need not repeat it. The
// file must hold at least one certificate and nothing else; a copy, not
// the path, so moving or editing the original later changes nothing.
func (d *Dir) SaveBrokerCA(pemFile string) error {
	const op = "remembering the broker's CA certificate"
	b, err := os.ReadFile(pemFile)
	if err != nil {
		return opError(op, err)
	}
	if err := checkCertPEM(b); err != nil {
		return hintError(op, "pass dozod's certificate or its CA as a PEM file", fmt.Errorf("%s: %w", pemFile, err))
	}
	return opError(op, WriteSecret(d.file(brokerCAFile), b))
}

// BrokerCA returns the path of the CA certificate kept at login, or "".
func (d *Dir) BrokerCA() string {
	p := d.file(brokerCAFile)
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return p
}

// checkCertPEM accepts PEM data of one or more certificates only.
func checkCertPEM(b []byte) error {
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return errors.New("not a PEM file of certificates")
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %s, not only certificates", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return errors.New("no certificate in it")
	}
	return nil
}

// IdentityPath is where the age identity lives.
func (d *Dir) IdentityPath() string { return d.file(identityFile) }

// Identity is the user's age identity and its public recipient.
type Identity struct {
	age.Identity
	Recipient age.Recipient
	// Public is the recipient string ("age1..." or "age1pq1...").
	Public string
}

// Keygen creates the user's age identity: ML-KEM-768+X25519 hybrid by
// default (safe against harvest-now-decrypt-later with a quantum
// computer, which matters for genomes kept for decades), X25519 if classic.
// It refuses to replace an existing identity unless force is set, because
// files wrapped to the old one could no longer be opened by it.
func (d *Dir) Keygen(classic, force bool) (*Identity, error) {
	var id Identity
	var secret string
	if classic {
		k, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, err
		}
		id = Identity{Identity: k, Recipient: k.Recipient(), Public: k.Recipient().String()}
		secret = k.String()
	} else {
		k, err := age.GenerateHybridIdentity()
		if err != nil {
			return nil, err
		}
		id = Identity{Identity: k, Recipient: k.Recipient(), Public: k.Recipient().String()}
		secret = k.String()
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), id.Public, secret)
	path := d.IdentityPath()
	if !force {
		// O_EXCL: even a concurrent keygen cannot be overwritten.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return nil, hintError("creating an identity", "use --force to replace it; files wrapped to the old key then need a new 'dozo key register' and fetch",
				fmt.Errorf("%s already exists", path))
		}
		if err != nil {
			return nil, opError("creating an identity", err)
		}
		if _, err := f.Write(b.Bytes()); err != nil {
			f.Close()
			os.Remove(path)
			return nil, opError("creating an identity", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, opError("creating an identity", err)
		}
		return &id, opError("creating an identity", f.Close())
	}
	return &id, opError("creating an identity", WriteSecret(path, b.Bytes()))
}

// Identity loads the user's age identity, or ErrNoIdentity.
func (d *Dir) Identity() (*Identity, error) {
	b, err := readSecret(d.IdentityPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoIdentity
	}
	if err != nil {
		return nil, err
	}
	return parseIdentity(b)
}

func parseIdentity(b []byte) (*Identity, error) {
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parsing the identity file: %w", err)
	}
	if len(ids) != 1 {
		return nil, fmt.Errorf("the identity file holds %d identities, want 1", len(ids))
	}
	switch k := ids[0].(type) {
	case *age.HybridIdentity:
		return &Identity{Identity: k, Recipient: k.Recipient(), Public: k.Recipient().String()}, nil
	case *age.X25519Identity:
		return &Identity{Identity: k, Recipient: k.Recipient(), Public: k.Recipient().String()}, nil
	}
	return nil, fmt.Errorf("unsupported identity type %T", ids[0])
}
