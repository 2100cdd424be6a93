package main

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// gen-cert makes a self-signed leaf for dozod, not a CA: pinned by the
// CLI, it vouches for dozod's own names and can vouch for nothing else.
func TestGenCertIsALeafNotACA(t *testing.T) {
	dir := t.TempDir()
	if err := genCert(dir, "127.0.0.1, localhost,dozo.example.org", time.Hour); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v %v", fi, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.IsCA || cert.BasicConstraintsValid || cert.KeyUsage != x509.KeyUsageDigitalSignature ||
		len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("IsCA %v, basic constraints %v, key usage %b, ext key usage %v", cert.IsCA, cert.BasicConstraintsValid, cert.KeyUsage, cert.ExtKeyUsage)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, name := range []string{"127.0.0.1", "localhost", "dozo.example.org"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("pinned leaf not valid for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "s3.example.org", Roots: roots}); err == nil {
		t.Error("pinned leaf valid for a name it was not made for")
	}

	// Its key cannot mint a certificate that a client pinning it accepts.
	kb, err := os.ReadFile(filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	kblk, _ := pem.Decode(kb)
	k, err := x509.ParsePKCS8PrivateKey(kblk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(cert.PublicKey.(*ecdsa.PublicKey).Curve, rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "s3.example.org"}, DNSNames: []string{"s3.example.org"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, cert, &other.PublicKey, k)
	if err != nil {
		return // refusing to sign is as good
	}
	minted, _ := x509.ParseCertificate(der)
	if _, err := minted.Verify(x509.VerifyOptions{DNSName: "s3.example.org", Roots: roots}); err == nil {
		t.Fatal("a certificate signed with dozod's key verifies against the pinned certificate")
	}
}
