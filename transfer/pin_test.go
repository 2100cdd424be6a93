package transfer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"github.com/dozo-vault/dozo/client"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/internal/selfsigned"
)

// The certificate pinned for dozod (DOZO_CA_CERT, as `dozod gen-cert`
// makes it) is trusted for the broker connection only: a storage server
// presenting it is refused by the presigned-URL client, which uses the
// system roots.
func TestPinnedBrokerCertIsNotTrustedForStorage(t *testing.T) {
	certPEM, keyPEM, err := selfsigned.Leaf("127.0.0.1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(pin, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/health":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"status":"ok"}`))
		default:
			w.Write([]byte("piece bytes"))
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	srv.StartTLS()
	defer srv.Close()

	c, err := client.New(client.Options{Broker: srv.URL, CACert: pin})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Health(ctx); err != nil {
		t.Fatalf("broker client refused the pinned certificate: %v", err)
	}
	single := &batchPresigner{noBatch: true, single: func(context.Context, string, string) (*api.PresignResponse, error) {
		return &api.PresignResponse{URL: srv.URL + "/dozo-a/piece?X-Amz-Signature=x", Method: http.MethodGet}, nil
	}}
	tg := targets(storageHTTP, []api.Target{{ID: "s1-a", Domain: "s1"}}, single.presign, single.flush)[0]
	rc, err := tg.Get(ctx, "dozo/v1/ds/f/seg-0/p0", 0, -1)
	if err == nil {
		rc.Close()
		t.Fatal("storage client accepted a server presenting dozod's pinned certificate")
	}
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("storage client refused for another reason: %v", err)
	}
	if h := client.Hint(err); !strings.Contains(h, "SSL_CERT_DIR") {
		t.Errorf("hint for an untrusted storage certificate: %q", h)
	}
}
