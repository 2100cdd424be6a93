package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// KeyType is the Transit key type dozo creates for datasets: an AEAD, so the
// file id can be bound to each wrapped file key as associated data.
const KeyType = "aes256-gcm96"

// KeyInfo is what Transit reports about a key. It never includes key material.
type KeyInfo struct {
	Name                 string
	Type                 string
	LatestVersion        int
	MinDecryptionVersion int
	MinEncryptionVersion int
	DeletionAllowed      bool
	Exportable           bool
	AllowPlaintextBackup bool
	Derived              bool
	// Imported: the key material was brought into Vault (BYOK), so it
	// exists outside it.
	Imported bool
	// BackedUp and Restored: a backup of the key was taken, or the key was
	// restored from one.
	BackedUp, Restored bool
	AutoRotatePeriod   int // seconds; 0 is off
	Versions           []int
}

// CreateKey creates a non-exportable AEAD Transit key. Creating a key that
// exists is a no-op in Transit (whatever that key is), so this is
// idempotent; a caller that needs a key of its own reads it back and
// checks it with CheckNewKey.
func (c *Client) CreateKey(ctx context.Context, name string) error {
	p, err := c.path("keys", name)
	if err != nil {
		return err
	}
	_, err = c.write(ctx, p, map[string]any{"type": KeyType, "exportable": false, "allow_plaintext_backup": false})
	return err
}

// ErrKeyNotNew is returned by CheckNewKey for a key that is not exactly
// what CreateKey makes under a name that was free.
var ErrKeyNotNew = errors.New("not a newly created dozo key")

// CheckNewKey accepts ki only if it describes a key as CreateKey makes it
// under a name that did not exist: the dataset AEAD type, never exportable
// or backed up in plaintext, not imported, derived, restored or scheduled
// for rotation, at version 1 with no version retired, and not deletable.
// Transit's create is a no-op on an existing name, so this is how dozod
// tells its own new key from one someone else made first (for instance
// exportable, to take its material out later). The error wraps
// ErrKeyNotNew and names every difference.
func CheckNewKey(ki *KeyInfo) error {
	var bad []string
	if ki.Type != KeyType {
		bad = append(bad, fmt.Sprintf("type %q, want %q", ki.Type, KeyType))
	}
	if ki.Exportable {
		bad = append(bad, "exportable")
	}
	if ki.AllowPlaintextBackup {
		bad = append(bad, "allows plaintext backup")
	}
	if ki.Imported {
		bad = append(bad, "imported")
	}
	if ki.BackedUp || ki.Restored {
		bad = append(bad, "backed up or restored")
	}
	if ki.Derived {
		bad = append(bad, "derived")
	}
	if ki.LatestVersion != 1 || ki.MinDecryptionVersion != 1 || ki.MinEncryptionVersion != 0 {
		bad = append(bad, fmt.Sprintf("at version %d (min decryption %d, min encryption %d), want 1 (1, 0)",
			ki.LatestVersion, ki.MinDecryptionVersion, ki.MinEncryptionVersion))
	}
	if ki.DeletionAllowed {
		bad = append(bad, "deletion allowed")
	}
	if ki.AutoRotatePeriod != 0 {
		bad = append(bad, fmt.Sprintf("auto-rotated every %ds", ki.AutoRotatePeriod))
	}
	if len(bad) > 0 {
		return fmt.Errorf("vault: transit key %s: %w: %s", ki.Name, ErrKeyNotNew, strings.Join(bad, ", "))
	}
	return nil
}

// ReadKey returns the key's metadata.
func (c *Client) ReadKey(ctx context.Context, name string) (*KeyInfo, error) {
	p, err := c.path("keys", name)
	if err != nil {
		return nil, err
	}
	s, err := c.api.Logical().ReadWithContext(ctx, p)
	if err != nil {
		return nil, classify(p, err)
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("vault %s: %w", p, ErrNotFound)
	}
	ki := &KeyInfo{Name: name}
	ki.Type, _ = s.Data["type"].(string)
	// The flags CheckNewKey relies on must be there: a missing one is an
	// error, never taken as false. (imported_key is absent only from Vaults
	// too old to import keys.)
	for k, dst := range map[string]*bool{
		"deletion_allowed": &ki.DeletionAllowed, "exportable": &ki.Exportable,
		"allow_plaintext_backup": &ki.AllowPlaintextBackup, "derived": &ki.Derived,
	} {
		var ok bool
		if *dst, ok = s.Data[k].(bool); !ok {
			return nil, fmt.Errorf("vault %s: response field %q missing or not a boolean", p, k)
		}
	}
	ki.Imported, _ = s.Data["imported_key"].(bool)
	ki.BackedUp = s.Data["backup_info"] != nil
	ki.Restored = s.Data["restore_info"] != nil
	if _, ok := s.Data["auto_rotate_period"]; ok {
		if ki.AutoRotatePeriod, err = intField(s.Data, "auto_rotate_period"); err != nil {
			return nil, err
		}
	}
	if ki.LatestVersion, err = intField(s.Data, "latest_version"); err != nil {
		return nil, err
	}
	if ki.MinDecryptionVersion, err = intField(s.Data, "min_decryption_version"); err != nil {
		return nil, err
	}
	if ki.MinEncryptionVersion, err = intField(s.Data, "min_encryption_version"); err != nil {
		return nil, err
	}
	if keys, ok := s.Data["keys"].(map[string]any); ok {
		for k := range keys {
			if v, err := strconv.Atoi(k); err == nil {
				ki.Versions = append(ki.Versions, v)
			}
		}
		sort.Ints(ki.Versions)
	}
	return ki, nil
}

func intField(m map[string]any, k string) (int, error) {
	switch v := m[k].(type) {
	case json.Number:
		n, err := v.Int64()
		return int(n), err
	case float64:
		return int(v), nil
	case int:
		return v, nil
	}
	return 0, fmt.Errorf("vault: response field %q missing or not a number", k)
}

// Encrypt encrypts plaintext under the latest version of the key, binding
// associatedData (may be nil). The result is Transit's "vault:vN:..." string.
func (c *Client) Encrypt(ctx context.Context, name string, plaintext, associatedData []byte) (string, error) {
	p, err := c.path("encrypt", name)
	if err != nil {
		return "", err
	}
	body := map[string]any{"plaintext": b64(plaintext)}
	if associatedData != nil {
		body["associated_data"] = b64(associatedData)
	}
	s, err := c.write(ctx, p, body)
	if err != nil {
		return "", err
	}
	return stringField(s, "ciphertext")
}

// Decrypt reverses Encrypt. It fails unless associatedData equals what was
// bound at encryption and the ciphertext's key version is still allowed.
func (c *Client) Decrypt(ctx context.Context, name, ciphertext string, associatedData []byte) ([]byte, error) {
	p, err := c.path("decrypt", name)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"ciphertext": ciphertext}
	if associatedData != nil {
		body["associated_data"] = b64(associatedData)
	}
	s, err := c.write(ctx, p, body)
	if err != nil {
		return nil, err
	}
	pt, err := stringField(s, "plaintext")
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(pt)
}

// WrapKey and UnwrapKey make Client a crypto.KeyWrapper.
func (c *Client) WrapKey(ctx context.Context, name string, plaintext, associatedData []byte) (string, error) {
	return c.Encrypt(ctx, name, plaintext, associatedData)
}

// UnwrapKey: see WrapKey.
func (c *Client) UnwrapKey(ctx context.Context, name, ciphertext string, associatedData []byte) ([]byte, error) {
	return c.Decrypt(ctx, name, ciphertext, associatedData)
}

// Rewrap re-encrypts ciphertext under the key's latest version. Transit's
// own rewrap endpoint (Vault 1.21) drops associated data, which makes it
// fail for AEAD-bound ciphertexts; with associatedData set, Rewrap therefore
// decrypts and encrypts in two calls. The plaintext (a file key) exists only
// in this process's memory in between and is zeroed before return.
func (c *Client) Rewrap(ctx context.Context, name, ciphertext string, associatedData []byte) (string, error) {
	if associatedData == nil {
		p, err := c.path("rewrap", name)
		if err != nil {
			return "", err
		}
		s, err := c.write(ctx, p, map[string]any{"ciphertext": ciphertext})
		if err != nil {
			return "", err
		}
		return stringField(s, "ciphertext")
	}
	pt, err := c.Decrypt(ctx, name, ciphertext, associatedData)
	if err != nil {
		return "", err
	}
	defer clear(pt)
	return c.Encrypt(ctx, name, pt, associatedData)
}

// Rotate adds a new key version; new encryptions use it.
func (c *Client) Rotate(ctx context.Context, name string) error {
	p, err := c.path("keys", name)
	if err != nil {
		return err
	}
	_, err = c.write(ctx, p+"/rotate", nil)
	return err
}

// KeyConfig changes a key's policy; nil fields are left as they are.
type KeyConfig struct {
	MinDecryptionVersion *int
	MinEncryptionVersion *int
	DeletionAllowed      *bool
}

// ConfigureKey applies cfg to the key.
func (c *Client) ConfigureKey(ctx context.Context, name string, cfg KeyConfig) error {
	p, err := c.path("keys", name)
	if err != nil {
		return err
	}
	body := map[string]any{}
	if cfg.MinDecryptionVersion != nil {
		body["min_decryption_version"] = *cfg.MinDecryptionVersion
	}
	if cfg.MinEncryptionVersion != nil {
		body["min_encryption_version"] = *cfg.MinEncryptionVersion
	}
	if cfg.DeletionAllowed != nil {
		body["deletion_allowed"] = *cfg.DeletionAllowed
	}
	if len(body) == 0 {
		return errors.New("vault: empty key config")
	}
	_, err = c.write(ctx, p+"/config", body)
	return err
}

// DeleteKey destroys every version of the key (crypto-shredding): whatever
// it wrapped can never be unwrapped again. Transit requires
// deletion_allowed first; DeleteKey sets it.
func (c *Client) DeleteKey(ctx context.Context, name string) error {
	allow := true
	if err := c.ConfigureKey(ctx, name, KeyConfig{DeletionAllowed: &allow}); err != nil {
		return err
	}
	p, _ := c.path("keys", name)
	if _, err := c.api.Logical().DeleteWithContext(ctx, p); err != nil {
		return classify(p, err)
	}
	return nil
}

// HMAC returns Transit's HMAC-SHA256 of data under the key ("vault:vN:...").
func (c *Client) HMAC(ctx context.Context, name string, data []byte) (string, error) {
	p, err := c.path("hmac", name)
	if err != nil {
		return "", err
	}
	s, err := c.write(ctx, p+"/sha2-256", map[string]any{"input": b64(data)})
	if err != nil {
		return "", err
	}
	return stringField(s, "hmac")
}

// ErrBadMAC is returned by VerifyHMAC when the MAC does not match.
var ErrBadMAC = errors.New("vault: HMAC does not match")

// VerifyHMAC checks mac over data; a mismatch is ErrBadMAC.
func (c *Client) VerifyHMAC(ctx context.Context, name string, data []byte, mac string) error {
	p, err := c.path("verify", name)
	if err != nil {
		return err
	}
	s, err := c.write(ctx, p+"/sha2-256", map[string]any{"input": b64(data), "hmac": mac})
	if err != nil {
		return err
	}
	if s == nil || s.Data == nil {
		return errors.New("vault: empty verify response")
	}
	if ok, _ := s.Data["valid"].(bool); !ok {
		return ErrBadMAC
	}
	return nil
}

// MACKeys is the part of the key service that computes and checks MACs
// under a named key; *Client implements it.
type MACKeys interface {
	HMAC(ctx context.Context, name string, data []byte) (string, error)
	VerifyHMAC(ctx context.Context, name string, data []byte, mac string) error
}

// TransitHMAC authenticates manifests with the Transit key named Key: it
// asks the key service on every call, so a verification is fresh and a
// key service outage is an error, never a pass. It satisfies
// storage.Authenticator without this package importing storage.
type TransitHMAC struct {
	Keys MACKeys
	Key  string
}

// MAC implements storage.Authenticator.
func (t TransitHMAC) MAC(ctx context.Context, data []byte) (string, error) {
	return t.Keys.HMAC(ctx, t.Key, data)
}

// Verify implements storage.Authenticator.
func (t TransitHMAC) Verify(ctx context.Context, data []byte, mac string) error {
	return t.Keys.VerifyHMAC(ctx, t.Key, data, mac)
}
