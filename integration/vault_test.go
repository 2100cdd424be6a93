package integration

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/vault"
)

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

func TestVaultTransitLifecycle(t *testing.T) {
	s := needStack(t)
	ctx := testContext(t)
	vc := s.vault(t)
	key := uniqueName("it-transit")
	if err := vc.CreateKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := vc.CreateKey(ctx, key); err != nil {
		t.Fatalf("CreateKey is not idempotent: %v", err)
	}
	info, err := vc.ReadKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != vault.KeyType || info.Exportable || info.LatestVersion != 1 {
		t.Fatalf("unexpected key info %+v", info)
	}

	secret := []byte("0123456789abcdef")
	ad := []byte("file-A")
	ct, err := vc.Encrypt(ctx, key, secret, ad)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ct, "vault:v1:") {
		t.Fatalf("ciphertext %q", ct)
	}
	got, err := vc.Decrypt(ctx, key, ct, ad)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("decrypt: %v %x", err, got)
	}
	if _, err := vc.Decrypt(ctx, key, ct, []byte("file-B")); err == nil {
		t.Fatal("decrypt with other associated data succeeded")
	}
	if _, err := vc.Decrypt(ctx, key, ct, nil); err == nil {
		t.Fatal("decrypt without associated data succeeded")
	}

	// Rotation: rewrap moves the ciphertext to v2; after raising the
	// minimum decryption version the v1 ciphertext is dead.
	if err := vc.Rotate(ctx, key); err != nil {
		t.Fatal(err)
	}
	ct2, err := vc.Rewrap(ctx, key, ct, ad)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ct2, "vault:v2:") {
		t.Fatalf("rewrapped ciphertext %q not on v2", ct2)
	}
	v2 := 2
	if err := vc.ConfigureKey(ctx, key, vault.KeyConfig{MinDecryptionVersion: &v2}); err != nil {
		t.Fatal(err)
	}
	if _, err := vc.Decrypt(ctx, key, ct, ad); err == nil {
		t.Fatal("v1 ciphertext still decrypts after min_decryption_version=2")
	}
	if got, err := vc.Decrypt(ctx, key, ct2, ad); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("rewrapped ciphertext: %v", err)
	}

	// HMAC authenticates manifests.
	mac, err := vc.HMAC(ctx, key, []byte("manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if err := vc.VerifyHMAC(ctx, key, []byte("manifest"), mac); err != nil {
		t.Fatal(err)
	}
	if err := vc.VerifyHMAC(ctx, key, []byte("manifesT"), mac); !errors.Is(err, vault.ErrBadMAC) {
		t.Fatalf("tampered data: got %v, want ErrBadMAC", err)
	}

	// Crypto-shredding: after DeleteKey nothing decrypts.
	if err := vc.DeleteKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := vc.ReadKey(ctx, key); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("ReadKey after delete: %v, want ErrNotFound", err)
	}
	if _, err := vc.Decrypt(ctx, key, ct2, ad); err == nil {
		t.Fatal("decrypt after key deletion succeeded")
	}
}

func TestVaultTokenAndUserpass(t *testing.T) {
	s := needStack(t)
	ctx := testContext(t)
	root := s.vault(t)
	user, pass := fmt.Sprintf("it-user-%d", time.Now().UnixNano()%1e9), "correct horse battery"
	if _, err := root.API().Logical().WriteWithContext(ctx, "auth/userpass/users/"+user,
		map[string]any{"password": pass, "token_policies": "default", "token_ttl": "10m"}); err != nil {
		t.Fatal(err)
	}
	anon, err := vault.New(vault.Config{Address: s.vaultAddr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.UserpassLogin(ctx, "", user, "wrong password"); !errors.Is(err, vault.ErrPermissionDenied) {
		t.Fatalf("bad password: got %v, want ErrPermissionDenied", err)
	}
	if _, err := anon.UserpassLogin(ctx, "", "../sys/seal", pass); err == nil {
		t.Fatal("traversal user name accepted")
	}
	tok, err := anon.UserpassLogin(ctx, "", user, pass)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := anon.WithToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	info, err := uc.LookupSelf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Username != user || info.EntityID == "" || info.ExpireTime.IsZero() {
		t.Fatalf("token info %+v", info)
	}
	// The user's own token grants nothing on Transit.
	if err := uc.CreateKey(ctx, uniqueName("user-made")); !errors.Is(err, vault.ErrPermissionDenied) {
		t.Fatalf("user token on transit: got %v, want ErrPermissionDenied", err)
	}
	forged, _ := anon.WithToken("hvs.forged-token-value")
	if _, err := forged.LookupSelf(ctx); !errors.Is(err, vault.ErrPermissionDenied) {
		t.Fatalf("forged token: got %v, want ErrPermissionDenied", err)
	}
}

func TestVaultUnreachableFailsClosed(t *testing.T) {
	ctx := testContext(t)
	vc, err := vault.New(vault.Config{Address: "http://127.0.0.1:1", Token: "x", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vc.API().SetMaxRetries(0)
	if _, err := vc.Encrypt(ctx, "k", []byte("x"), nil); !errors.Is(err, vault.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}
