package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/vault"
)

// TestDatasetCreateRefusesPlantedTransitKey: a Transit key named like a
// dataset's (dozo-ds-<ID>) made beforehand by someone else with Transit
// rights — exportable, of another type, or already rotated — is not
// adopted: `dozo dataset create` is refused with one clear line, the
// catalog gets no row, and the key in Vault is exactly as it was. A normal
// create still works and gets a fresh, non-exportable key.
func TestDatasetCreateRefusesPlantedTransitKey(t *testing.T) {
	s := needStack(t)
	ctx := testContext(t)
	root := s.vault(t)
	logical := root.API().Logical()
	sam := s.login(t, s.env["DOZO_DEV_SUBMITTER"], s.env["DOZO_DEV_SUBMITTER_PASSWORD"])
	db := s.catalogDB(t)

	// readRaw is Transit's whole answer for the key, creation times of
	// every version included, so any change to it shows.
	readRaw := func(name string) string {
		t.Helper()
		sec, err := logical.ReadWithContext(ctx, "transit/keys/"+name)
		if err != nil || sec == nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		b, _ := json.Marshal(sec.Data)
		return string(b)
	}

	for _, c := range []struct {
		what  string
		plant func(name string) error
		wrong string // what dozod's log says is wrong
	}{
		{"exportable", func(name string) error {
			_, err := logical.WriteWithContext(ctx, "transit/keys/"+name, map[string]any{"type": vault.KeyType, "exportable": true})
			return err
		}, "exportable"},
		{"another type", func(name string) error {
			_, err := logical.WriteWithContext(ctx, "transit/keys/"+name, map[string]any{"type": "chacha20-poly1305"})
			return err
		}, "chacha20-poly1305"},
		{"at version 2", func(name string) error {
			if _, err := logical.WriteWithContext(ctx, "transit/keys/"+name, map[string]any{"type": vault.KeyType}); err != nil {
				return err
			}
			_, err := logical.WriteWithContext(ctx, "transit/keys/"+name+"/rotate", nil)
			return err
		}, "at version 2"},
	} {
		t.Run(strings.ReplaceAll(c.what, " ", "-"), func(t *testing.T) {
			id := newDatasetID()
			name := "dozo-ds-" + id
			if err := c.plant(name); err != nil {
				t.Fatal(err)
			}
			before := readRaw(name)
			line := sam.refused(t, "dataset", "create", id, "--title", "planted key")
			if !strings.Contains(line, name) || !strings.Contains(line, "already exists in Vault") {
				t.Errorf("refusal does not say why: %s", line)
			}
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM datasets WHERE id = ?`, id).Scan(&n); err != nil || n != 0 {
				t.Errorf("catalog rows for %s: %d (%v)", id, n, err)
			}
			if after := readRaw(name); after != before {
				t.Errorf("the key changed:\nbefore %s\nafter  %s", before, after)
			}
			sam.refused(t, "dataset", "show", id)
			if !dozodLogHas(t, s, name, c.wrong) {
				t.Errorf("dozod's log does not say the key is %s", c.wrong)
			}
		})
	}

	id := newDatasetID()
	sam.must(t, "dataset", "create", id, "--title", "fresh key")
	ki, err := root.ReadKey(ctx, "dozo-ds-"+id)
	if err != nil {
		t.Fatal(err)
	}
	if err := vault.CheckNewKey(ki); err != nil {
		t.Fatalf("the key dozod made: %v", err)
	}
	// A retry finds the key it made and the dataset: "already exists".
	if line := sam.refused(t, "dataset", "create", id, "--title", "again"); !strings.Contains(line, "already exists") {
		t.Errorf("second create: %s", line)
	}
	if again := readRaw("dozo-ds-" + id); !strings.Contains(again, `"latest_version":1,`) {
		t.Errorf("the key after a second create: %s", again)
	}
}
