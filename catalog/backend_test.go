package catalog

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The catalog tests run on SQLite as written, and each runs again on
// PostgreSQL as a subtest of TestPostgres: store and open give a test the
// backend its name says. The PostgreSQL server is DOZO_TEST_POSTGRES_URL
// (a role that may create databases), else a private cluster that the
// first test needing it starts with scripts/postgres.sh and TestMain stops
// at the end. Each test gets a database of its own, dropped after it.

// postgresTests are the tests TestPostgres runs again on PostgreSQL:
// every test of the package but those in backendFree (checked by
// TestPostgresRunsEveryTest).
var postgresTests = []struct {
	name string
	fn   func(*testing.T)
}{
	{"TestAuditAppendConcurrentChain", TestAuditAppendConcurrentChain},
	{"TestAuditVerifyTamperedTable", TestAuditVerifyTamperedTable},
	{"TestDeletionHidesDataset", TestDeletionHidesDataset},
	{"TestReplaceKeyMaterialCAS", TestReplaceKeyMaterialCAS},
	{"TestFinishRotationCountsKeyGeneration", TestFinishRotationCountsKeyGeneration},
	{"TestMigrations", TestMigrations},
	{"TestDatasetExistsAndRoles", TestDatasetExistsAndRoles},
	{"TestAccessIsTheSeparateReads", TestAccessIsTheSeparateReads},
	{"TestAccessUsesIndexes", TestAccessUsesIndexes},
	{"TestLookupsUseIndexes", TestLookupsUseIndexes},
	{"TestLookupIndexesMigration", TestLookupIndexesMigration},
	{"TestStatementCache", TestStatementCache},
	{"TestPing", TestPing},
	{"TestClock", TestClock},
	{"TestGrantLifecycle", TestGrantLifecycle},
	{"TestUploadStateMachine", TestUploadStateMachine},
	{"TestCommitAndComplete", TestCommitAndComplete},
	{"TestAbortExpireAndClean", TestAbortExpireAndClean},
	{"TestCleanFinal", TestCleanFinal},
	{"TestGrantPeriodAndRegister", TestGrantPeriodAndRegister},
	{"TestDatasetNBDCMetadataAndMembers", TestDatasetNBDCMetadataAndMembers},
	{"TestFreezes", TestFreezes},
	{"TestConsoleSessions", TestConsoleSessions},
	{"TestPendingSignIns", TestPendingSignIns},
	{"TestScheduleAndCancelDeletion", TestScheduleAndCancelDeletion},
	{"TestRestoreFileAndStats", TestRestoreFileAndStats},
	{"TestScrubRunsAndRepairSwap", TestScrubRunsAndRepairSwap},
	{"TestAuditAppendersOnSeveralCatalogs", TestAuditAppendersOnSeveralCatalogs},
	{"TestConcurrentChecksHold", TestConcurrentChecksHold},
	{"TestCopyKeepsEverything", TestCopyKeepsEverything},
	{"TestCopyRefusesBrokenChain", TestCopyRefusesBrokenChain},
	{"TestBackup", TestBackup},
	{"TestScheduledGrantRows", TestScheduledGrantRows},
	{"TestAuditFileFilter", TestAuditFileFilter},
	{"TestSeenUsersBindPendingRows", TestSeenUsersBindPendingRows},
	{"TestPrincipalMatchesEntity", TestPrincipalMatchesEntity},
	{"TestAuditGroupCommitConcurrent", TestAuditGroupCommitConcurrent},
	{"TestAuditGroupCommitFailureFailsBatch", TestAuditGroupCommitFailureFailsBatch},
	{"TestAuditGroupCommitFailureConcurrent", TestAuditGroupCommitFailureConcurrent},
	{"TestAuditGroupCommitCancelWhileQueued", TestAuditGroupCommitCancelWhileQueued},
	{"TestJobClaimLeaseFinish", TestJobClaimLeaseFinish},
	{"TestJobCancelReleaseList", TestJobCancelReleaseList},
	{"TestScrubRunJobAtomicAndPrune", TestScrubRunJobAtomicAndPrune},
	{"TestScrubRunShardJobs", TestScrubRunShardJobs},
	{"TestGrantsGeneration", TestGrantsGeneration},
}

// backendFree are tests of pure code or of the harness itself.
var backendFree = []string{"TestMain", "TestPostgres", "TestPostgresRunsEveryTest", "TestRebind", "TestParseLocation", "TestPostgresSchema"}

// TestPostgres runs the catalog tests on PostgreSQL. Under CI=true a
// missing server fails it; with -short it is skipped.
func TestPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the PostgreSQL variant needs a server")
	}
	if _, err := postgresURL(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL unavailable under CI=true: %v", err)
		}
		t.Skipf("PostgreSQL unavailable: %v", err)
	}
	for _, tc := range postgresTests {
		t.Run(tc.name, tc.fn)
	}
}

// TestPostgresRunsEveryTest keeps postgresTests complete: a test added to
// the package runs on both backends unless it is listed as backend-free.
func TestPostgresRunsEveryTest(t *testing.T) {
	files, _ := filepath.Glob("*_test.go")
	var missing []string
	for _, f := range files {
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "Test") || slices.Contains(backendFree, fd.Name.Name) {
				continue
			}
			if !slices.ContainsFunc(postgresTests, func(p struct {
				name string
				fn   func(*testing.T)
			}) bool {
				return p.name == fd.Name.Name
			}) {
				missing = append(missing, fd.Name.Name)
			}
		}
	}
	if len(missing) > 0 {
		t.Fatalf("not run on PostgreSQL: add to postgresTests (backend_test.go), or to backendFree if pure: %v", missing)
	}
}

// onPostgres reports whether t runs on PostgreSQL: a subtest of
// TestPostgres, or a benchmark named BenchmarkPostgres....
func onPostgres(t testing.TB) bool {
	return strings.HasPrefix(t.Name(), "TestPostgres/") || strings.HasPrefix(t.Name(), "BenchmarkPostgres")
}

// store returns where t can open a fresh, empty catalog on its backend:
// a file in t's temporary directory, or a PostgreSQL database of its own
// that is dropped when t ends.
func store(t testing.TB) string {
	t.Helper()
	if !onPostgres(t) {
		return filepath.Join(t.TempDir(), "dozo.db")
	}
	base, err := postgresURL()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := openPostgres(base, new(atomic.Int64))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	name := "dozo_test_" + hex.EncodeToString(b)
	// C collation: text sorts by bytes, as in SQLite.
	if _, err := admin.Exec(`CREATE DATABASE ` + name + ` TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`); err != nil {
		admin.Close()
		t.Fatalf("creating a test database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

var pg struct {
	once sync.Once
	url  string
	err  error
	dir  string // the private cluster's state, when this process started it
}

// postgresURL returns the server the PostgreSQL variant uses, starting a
// private cluster the first time when DOZO_TEST_POSTGRES_URL is unset.
func postgresURL() (string, error) {
	pg.once.Do(func() {
		if u := os.Getenv("DOZO_TEST_POSTGRES_URL"); u != "" {
			pg.url = u
			return
		}
		if pg.dir, pg.err = os.MkdirTemp("", "dozo-pg-"); pg.err != nil {
			return
		}
		if _, pg.err = postgresScript("up"); pg.err != nil {
			return
		}
		var out string
		if out, pg.err = postgresScript("env"); pg.err != nil {
			return
		}
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(line, "DOZO_TEST_POSTGRES_URL="); ok {
				pg.url = strings.TrimSpace(v)
			}
		}
		if pg.url == "" {
			pg.err = fmt.Errorf("scripts/postgres.sh env printed no DOZO_TEST_POSTGRES_URL")
		}
	})
	return pg.url, pg.err
}

// postgresScript runs scripts/postgres.sh on the private cluster. Its
// output goes to a file, not a pipe, so the server it leaves running
// cannot hold this process up.
func postgresScript(arg string) (string, error) {
	out, err := os.CreateTemp("", "dozo-pg-script-")
	if err != nil {
		return "", err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(filepath.Join("..", "scripts", "postgres.sh"), arg)
	cmd.Env = append(os.Environ(), "DOZO_POSTGRES_DIR="+pg.dir)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	if err != nil {
		return "", fmt.Errorf("scripts/postgres.sh %s: %v: %s", arg, err, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if pg.dir != "" {
		if _, err := postgresScript("down"); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.RemoveAll(pg.dir)
	}
	os.Exit(code)
}

// openAt opens a Catalog on where, closed when t ends; tests open several
// on one store as several dozods would.
func openAt(t *testing.T, where string) *Catalog {
	t.Helper()
	c, err := Open(context.Background(), where)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rowCount counts a table's rows.
func rowCount(t *testing.T, db *sql.DB, table string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(`SELECT count(*) FROM ` + quoteIdent(table)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
