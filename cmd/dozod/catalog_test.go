package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/catalog"
)

// TestCatalogMaintenanceCommands runs migrate, backup and copy as an
// operator would, on SQLite files (the PostgreSQL side of copy is tested
// in package catalog).
func TestCatalogMaintenanceCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "dozo.db")
	c, err := catalog.Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.AppendAudit(ctx, audit.Record{Time: time.Unix(int64(i), 0), Actor: "sam", Action: "a", Object: "o", Result: audit.ResultOK}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		app := newApp()
		app.Writer = &out
		err := app.Run(append([]string{"dozod", "catalog"}, args...))
		return out.String(), err
	}
	if out, err := run("migrate", "--catalog", "sqlite://"+src); err != nil || !strings.Contains(out, "schema version") {
		t.Fatalf("migrate: %q %v", out, err)
	}
	backup := filepath.Join(dir, "backup.db")
	if out, err := run("backup", "--catalog", src, "--to", backup); err != nil || !strings.Contains(out, "backed up") {
		t.Fatalf("backup: %q %v", out, err)
	}
	out, err := run("copy", "--from", "sqlite://"+backup, "--to", "sqlite://"+filepath.Join(dir, "copy.db"), "--json")
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	var rep catalog.CopyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.AuditRecords != 3 {
		t.Fatalf("copy report %q: %v", out, err)
	}
	// A source that does not exist is an error, not a new empty catalog.
	missing := filepath.Join(dir, "missing.db")
	if _, err := run("copy", "--from", missing, "--to", filepath.Join(dir, "copy2.db")); err == nil {
		t.Fatal("copied from a missing catalog")
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("the missing source was created: %v", err)
	}
}
