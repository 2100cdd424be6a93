package broker

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/vault"
)

// outageKeys is fakeKeys behind a switch: while down, every call fails as
// the Vault client fails when Vault cannot be reached, and so does its
// health check.
type outageKeys struct {
	*fakeKeys
	down atomic.Bool
}

func (o *outageKeys) err(op string) error {
	if o.down.Load() {
		return fmt.Errorf("vault transit/%s: %w: dial tcp 127.0.0.1:8200: connect: connection refused", op, vault.ErrUnavailable)
	}
	return nil
}

func (o *outageKeys) Health(context.Context) error { return o.err("sys/health") }

func (o *outageKeys) CreateKey(ctx context.Context, name string) error {
	if err := o.err("keys"); err != nil {
		return err
	}
	return o.fakeKeys.CreateKey(ctx, name)
}

func (o *outageKeys) ReadKey(ctx context.Context, name string) (*vault.KeyInfo, error) {
	if err := o.err("keys"); err != nil {
		return nil, err
	}
	return o.fakeKeys.ReadKey(ctx, name)
}

func (o *outageKeys) WrapKey(ctx context.Context, name string, pt, ad []byte) (string, error) {
	if err := o.err("encrypt"); err != nil {
		return "", err
	}
	return o.fakeKeys.WrapKey(ctx, name, pt, ad)
}

func (o *outageKeys) UnwrapKey(ctx context.Context, name, ct string, ad []byte) ([]byte, error) {
	if err := o.err("decrypt"); err != nil {
		return nil, err
	}
	return o.fakeKeys.UnwrapKey(ctx, name, ct, ad)
}

func (o *outageKeys) HMAC(ctx context.Context, name string, data []byte) (string, error) {
	if err := o.err("hmac"); err != nil {
		return "", err
	}
	return o.fakeKeys.HMAC(ctx, name, data)
}

func (o *outageKeys) VerifyHMAC(ctx context.Context, name string, data []byte, mac string) error {
	if err := o.err("verify"); err != nil {
		return err
	}
	return o.fakeKeys.VerifyHMAC(ctx, name, data, mac)
}

// TestVaultOutage: while Vault is unreachable every request that needs it
// gets the one 503, and once the health probe has seen the outage every
// authenticated request does, even one whose token needs no Vault lookup
// (as with a cached token). /v1/health shows Vault down and the catalog
// up, readiness is refused, and all works again once Vault is back.
func TestVaultOutage(t *testing.T) {
	ctx := context.Background()
	keys := &outageKeys{fakeKeys: &fakeKeys{}}
	e, _ := newEnvWith(t, keys)
	e.srv.deps.Check(ctx)
	var h api.Health
	e.must(200, "", "GET", "/v1/health?ready=1", nil, &h)
	if h.Status != "ok" || !h.Ready || h.Vault == nil || h.Vault.State != "up" || h.Catalog == nil || h.Catalog.State != "up" ||
		h.Targets == nil || h.Targets.State != "up" || h.Targets.Up != 6 {
		t.Fatalf("health with everything up: %+v", h)
	}

	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t"}, nil)
	id, _ := age.GenerateX25519Identity()
	e.must(200, "tok-sam", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)
	data := randBytes(1000)
	e.upload("tok-sam", "DS1", "a.vcf", data, randBytes(16), randBytes(16))
	var up api.Upload
	key, nonce := randBytes(16), randBytes(16)
	e.must(201, "tok-sam", "POST", "/v1/datasets/DS1/uploads", beginReq("b.vcf", len(data), key, nonce), &up)
	e.writeAndCommit("tok-sam", &up, data, key, nonce)
	sha, md := sha256.Sum256(data), md5.Sum(data)
	complete := api.CompleteUploadRequest{SHA256: hex.EncodeToString(sha[:]), MD5: hex.EncodeToString(md[:])}

	const unavailable = "Vault is unavailable; try again later"
	type call struct {
		token, method, path string
		body                any
	}
	needVault := []call{
		{"tok-sam", "POST", "/v1/uploads/" + up.ID + "/complete", complete},
		{"tok-sam", "POST", "/v1/datasets/DS1/files/a.vcf/fetch", nil},
		{"tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS2", Title: "t"}},
		{"tok-sam", "POST", "/v1/datasets/DS1/uploads", beginReq("c.vcf", 10, randBytes(16), randBytes(16))},
		{"down", "GET", "/v1/whoami", nil}, // a token Vault must look up
	}
	refused := func(calls []call) {
		t.Helper()
		for _, c := range calls {
			code, raw := e.call(c.token, c.method, c.path, c.body, nil)
			if code != 503 || errBody(t, raw).Error != unavailable {
				t.Errorf("%s %s with Vault down: %d %s, want 503 %q", c.method, c.path, code, raw, unavailable)
			}
		}
	}

	keys.down.Store(true)
	// Before the probe has noticed: whatever asks Vault fails with the 503.
	refused(needVault)
	// One failed check is not an outage (a slow answer under load): a
	// request whose identity is known without asking Vault is served.
	e.srv.deps.Check(ctx)
	e.must(200, "tok-sam", "GET", "/v1/whoami", nil, nil)
	// Two in a row are: every authenticated request is refused, also one
	// whose identity was known without asking Vault.
	e.srv.deps.Check(ctx)
	refused(append(needVault, call{"tok-sam", "GET", "/v1/whoami", nil}, call{"tok-rita", "GET", "/v1/datasets", nil}))
	// The outage's 503 carries Retry-After: the client's leave to retry,
	// which a 503 dozod means as final (no storage for an upload) lacks.
	req := httptest.NewRequest("GET", "/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer tok-sam")
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "2" {
		t.Errorf("whoami with Vault down: %d, Retry-After %q; want 503 with Retry-After 2", rec.Code, rec.Header().Get("Retry-After"))
	}
	h = api.Health{}
	e.must(200, "", "GET", "/v1/health", nil, &h)
	if h.Status != "unavailable" || h.Ready || h.Vault.State != "down" || h.Catalog.State != "up" || h.Vault.CheckedAt.IsZero() {
		t.Errorf("health with Vault down: %+v", h)
	}
	if code, raw := e.call("", "GET", "/v1/health?ready=1", nil, nil); code != 503 {
		t.Errorf("readiness with Vault down: %d %s", code, raw)
	}

	keys.down.Store(false)
	e.srv.deps.Check(ctx)
	e.must(200, "tok-sam", "GET", "/v1/whoami", nil, nil)
	e.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/complete", complete, nil)
	e.must(200, "tok-sam", "POST", "/v1/datasets/DS1/files/a.vcf/fetch", nil, nil)
	e.must(200, "", "GET", "/v1/health?ready=1", nil, nil)
}
