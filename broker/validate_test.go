package broker

import (
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// FuzzDatasetIDTransitKey: api.ValidateDatasetID accepts exactly the
// storage ids whose Transit key name Vault takes, so a dataset the client
// lets through is never refused by Vault, nor one Vault would take refused.
func FuzzDatasetIDTransitKey(f *testing.F) {
	for _, id := range []string{"JGAD000001", "a..b", "a.b", "-x", strings.Repeat("x", 120), strings.Repeat("x", 121)} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		want := storage.ValidateID(id) == nil && vault.ValidKeyName(api.TransitKeyName(id)) == nil
		if got := api.ValidateDatasetID(id) == nil; got != want {
			t.Fatalf("%q: accepted %v, want %v", id, got, want)
		}
	})
}
