package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCLILinksNoServerCode: the researchers' CLI is built from the client
// side only. dozod's packages (the broker, the catalog with its database
// drivers, the job runner) have no business in a binary copied to every
// laptop and compute node, and pulling one in by a stray import of a
// constant is easy to miss.
func TestCLILinksNoServerCode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/dozo-vault/dozo/broker", "github.com/dozo-vault/dozo/catalog", "github.com/dozo-vault/dozo/jobs",
			"github.com/dozo-vault/dozo/scrub", "github.com/dozo-vault/dozo/lifecycle", "github.com/jackc/pgx", "modernc.org/sqlite",
		} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("dozo links %s", dep)
			}
		}
	}
}
