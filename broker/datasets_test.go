package broker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/vault"
)

// presetKeys is fakeKeys with Transit keys that someone else made before
// dozod asked for them: Read reports their properties, and CreateKey leaves
// them as they are, as Transit does.
type presetKeys struct {
	fakeKeys
	preset map[string]vault.KeyInfo
}

func (p *presetKeys) CreateKey(ctx context.Context, name string) error {
	if _, ok := p.preset[name]; ok {
		return nil
	}
	return p.fakeKeys.CreateKey(ctx, name)
}

func (p *presetKeys) ReadKey(ctx context.Context, name string) (*vault.KeyInfo, error) {
	if ki, ok := p.preset[name]; ok {
		return &ki, nil
	}
	return p.fakeKeys.ReadKey(ctx, name)
}

// A dataset is not created on a Transit key dozod did not just make: one
// that is exportable, of another type, already rotated or imported is
// refused with 409, and no catalog row is written.
func TestCreateRefusesForeignTransitKey(t *testing.T) {
	fresh := vault.KeyInfo{Type: vault.KeyType, LatestVersion: 1, MinDecryptionVersion: 1}
	with := func(f func(*vault.KeyInfo)) vault.KeyInfo { k := fresh; f(&k); return k }
	keys := &presetKeys{preset: map[string]vault.KeyInfo{
		"dozo-ds-EXPORT":  with(func(k *vault.KeyInfo) { k.Exportable = true }),
		"dozo-ds-BACKUP":  with(func(k *vault.KeyInfo) { k.AllowPlaintextBackup = true }),
		"dozo-ds-CHACHA":  with(func(k *vault.KeyInfo) { k.Type = "chacha20-poly1305" }),
		"dozo-ds-ROTATED": with(func(k *vault.KeyInfo) { k.LatestVersion = 2 }),
		"dozo-ds-IMPORT":  with(func(k *vault.KeyInfo) { k.Imported = true }),
		"dozo-ds-DELETE":  with(func(k *vault.KeyInfo) { k.DeletionAllowed = true }),
	}}
	e, _ := newEnvWith(t, keys)
	for name := range keys.preset {
		id := strings.TrimPrefix(name, "dozo-ds-")
		raw := e.must(409, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: id, Title: "t"}, nil)
		if msg := errBody(t, raw).Error; !strings.Contains(msg, name) || !strings.Contains(msg, "already exists in Vault") {
			t.Errorf("%s: unclear refusal %q", id, msg)
		}
		if _, err := e.cat.Dataset(context.Background(), id); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("%s: catalog row written: %v", id, err)
		}
		e.must(404, "tok-sam", "GET", "/v1/datasets/"+id, nil, nil)
	}
	if !strings.Contains(e.logs.String(), "exportable") {
		t.Errorf("the log does not say what is wrong with the key: %s", e.logs)
	}
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "FRESH", Title: "t"}, nil)
}

// Creating a dataset that exists tells only a caller who may see it that it
// exists; anyone else gets the answer every route gives for a dataset they
// cannot see.
func TestCreateExistingDatasetRevealsOnlyToThoseWhoSeeIt(t *testing.T) {
	e := newEnv(t)
	e.must(201, "tok-admin", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD7", Title: "admin's"}, nil)
	// sam is a submitter with no role on JGAD7.
	code, created := e.call("tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD7", Title: "mine"}, nil)
	_, shown := e.call("tok-sam", "GET", "/v1/datasets/JGAD7", nil, nil)
	_, missing := e.call("tok-sam", "GET", "/v1/datasets/JGAD8", nil, nil)
	if code != 404 || errBody(t, created) != errBody(t, shown) ||
		errBody(t, created).Error != strings.Replace(errBody(t, missing).Error, "JGAD8", "JGAD7", 1) {
		t.Fatalf("create of an invisible dataset: %d %s; show answers %s", code, created, shown)
	}
	// Those who see it learn that it exists.
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD8", Title: "sam's"}, nil)
	for _, tok := range []string{"tok-sam", "tok-admin"} {
		raw := e.must(409, tok, "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD8", Title: "again"}, nil)
		if msg := errBody(t, raw).Error; !strings.Contains(msg, "already exists") {
			t.Errorf("%s: %q", tok, msg)
		}
	}
}

// The same holds for a deleted dataset: its custodians and the admins are
// told the id is spent, anyone else gets the uniform 404.
func TestCreateDeletedDatasetRevealsOnlyToItsCustodians(t *testing.T) {
	e, _ := newEnvWith(t, &versionedKeys{})
	e.must(201, "tok-admin", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "GONE", Title: "t"}, nil)
	e.must(202, "tok-admin", "POST", "/v1/datasets/GONE/delete", api.DeleteDatasetRequest{Confirm: "GONE"}, nil)
	e.now = e.now.Add(DefaultDeletionGrace) // the grace period is over: delete again runs it
	e.must(200, "tok-admin", "POST", "/v1/datasets/GONE/delete", api.DeleteDatasetRequest{Confirm: "GONE"}, nil)
	raw := e.must(409, "tok-admin", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "GONE", Title: "again"}, nil)
	if msg := errBody(t, raw).Error; !strings.Contains(msg, "deleted") {
		t.Errorf("admin: %q", msg)
	}
	_, created := e.call("tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "GONE", Title: "mine"}, nil)
	_, missing := e.call("tok-sam", "GET", "/v1/datasets/NEVER", nil, nil)
	if errBody(t, created).Error != strings.Replace(errBody(t, missing).Error, "NEVER", "GONE", 1) {
		t.Fatalf("create of another's deleted dataset: %s", created)
	}
}
