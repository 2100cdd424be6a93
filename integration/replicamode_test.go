package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/catalog"
)

// The suite runs against one dozod on SQLite (the default) or, with
// DOZO_TEST_REPLICAS=2, against two dozods on one PostgreSQL catalog
// (scripts/dev.sh with DOZO_DEV_REPLICAS=2). DOZO_TEST_CATALOG=postgres
// asks for the same (the dev stack runs PostgreSQL only with replicas). In
// that mode the tests talk to both replicas through a round-robin proxy:
// each request goes to the next replica, so one transfer's calls land on
// both, and no test needs to know there are two.

// replicaMode reports the replica count the suite was asked for (1 or 2)
// and sets DOZO_DEV_REPLICAS for every scripts/dev.sh the tests run.
func replicaMode() (int, error) {
	n := os.Getenv("DOZO_TEST_REPLICAS")
	switch c := os.Getenv("DOZO_TEST_CATALOG"); c {
	case "":
	case "sqlite":
		if n == "2" {
			return 0, errors.New("DOZO_TEST_REPLICAS=2 runs on PostgreSQL; unset DOZO_TEST_CATALOG or set it to postgres")
		}
	case "postgres":
		if n == "" {
			n = "2"
		}
	default:
		return 0, fmt.Errorf("DOZO_TEST_CATALOG=%q: want sqlite or postgres", c)
	}
	switch n {
	case "", "1":
		return 1, nil
	case "2":
		return 2, os.Setenv("DOZO_DEV_REPLICAS", "2")
	}
	return 0, fmt.Errorf("DOZO_TEST_REPLICAS=%q: want 1 or 2 (2 runs on PostgreSQL)", n)
}

// roundRobin is a TLS reverse proxy on loopback in front of the replicas,
// with the dev stack's certificate: clients see one dozod. The Host header
// is kept (dozod's console checks it against the Origin), and no
// forwarding headers are added: dozod sees a loopback client, as before.
type roundRobin struct {
	URL      string
	backends []*url.URL
	next     atomic.Uint64
	served   []atomic.Int64
	srv      *http.Server
}

// startRoundRobin serves on a free loopback port until Close.
func startRoundRobin(brokers []string, certFile, keyFile string) (*roundRobin, error) {
	rr := &roundRobin{served: make([]atomic.Int64, len(brokers))}
	for _, b := range brokers {
		u, err := url.Parse(strings.TrimSpace(b))
		if err != nil {
			return nil, err
		}
		rr.backends = append(rr.backends, u)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", certFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	tr.MaxIdleConnsPerHost = 64
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			i := int((rr.next.Add(1) - 1) % uint64(len(rr.backends)))
			rr.served[i].Add(1)
			pr.SetURL(rr.backends[i])
			pr.Out.Host = pr.In.Host
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rr.URL = "https://" + l.Addr().String()
	rr.srv = &http.Server{Handler: rp, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ErrorLog: log.New(io.Discard, "", 0)}
	go rr.srv.ServeTLS(l, "", "")
	return rr, nil
}

// Served is how many requests went to each replica.
func (rr *roundRobin) Served() []int64 {
	out := make([]int64, len(rr.served))
	for i := range rr.served {
		out[i] = rr.served[i].Load()
	}
	return out
}

func (rr *roundRobin) Close() error { return rr.srv.Shutdown(context.Background()) }

// theProxy is the suite's round-robin proxy in the two-replica mode.
var theProxy *roundRobin

// spreadBrokers puts a round-robin proxy in front of the stack's dozods
// when DOZO_BROKER names several, and makes it the tests' DOZO_BROKER
// (the replicas stay in DOZO_DEV_BROKERS).
//
// It runs again whenever the env file is read again (a test restarting
// the stack): the same proxy stays in front unless the dozods moved.
func (s *stack) spreadBrokers() error {
	brokers := strings.Split(s.env["DOZO_BROKER"], ",")
	if len(brokers) < 2 {
		return nil
	}
	if theProxy != nil {
		same := len(brokers) == len(theProxy.backends)
		for i := 0; same && i < len(brokers); i++ {
			same = strings.TrimSpace(brokers[i]) == theProxy.backends[i].String()
		}
		if same {
			s.env["DOZO_DEV_BROKERS"] = s.env["DOZO_BROKER"]
			s.env["DOZO_BROKER"] = theProxy.URL
			return nil
		}
		theProxy.Close()
		theProxy = nil
	}
	rr, err := startRoundRobin(brokers, s.env["DOZO_CA_CERT"], filepath.Join(s.devDir, "tls", "key.pem"))
	if err != nil {
		return fmt.Errorf("round-robin proxy: %w", err)
	}
	theProxy = rr
	s.env["DOZO_DEV_BROKERS"] = s.env["DOZO_BROKER"]
	s.env["DOZO_BROKER"] = rr.URL
	return nil
}

// The helpers below let a test reach every dozod of the stack, however
// many there are: the tests that signal, restart or read the log of
// dozod, or read and change its catalog, use them and run in both modes.

// dozods is how many dozods the stack runs.
func (s *stack) dozods() int {
	if b := s.env["DOZO_DEV_BROKERS"]; b != "" {
		return len(strings.Split(b, ","))
	}
	return 1
}

// brokerURLs are the dozods' own URLs (not the proxy's).
func (s *stack) brokerURLs() []string {
	if b := s.env["DOZO_DEV_BROKERS"]; b != "" {
		return strings.Split(b, ",")
	}
	return []string{s.env["DOZO_BROKER"]}
}

// dozodFile is dozod i's (1-based) file with extension ext ("pid", "log",
// "toml"), named as scripts/dev.sh names them: the first keeps the plain
// names, the second is dozod2.*.
func (s *stack) dozodFile(i int, ext string) string {
	name := "dozod"
	if i > 1 {
		name += strconv.Itoa(i)
	}
	return filepath.Join(s.devDir, name+"."+ext)
}

// dozodPids returns the process id of every dozod of the stack.
func (s *stack) dozodPids(t testing.TB) []int {
	t.Helper()
	var pids []int
	for i := 1; i <= s.dozods(); i++ {
		b, err := os.ReadFile(s.dozodFile(i, "pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			t.Fatalf("%s: %q", s.dozodFile(i, "pid"), b)
		}
		pids = append(pids, pid)
	}
	return pids
}

// signalDozods sends sig to every dozod of the stack.
func (s *stack) signalDozods(t testing.TB, sig syscall.Signal) {
	t.Helper()
	for _, pid := range s.dozodPids(t) {
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatalf("signal %v to dozod (pid %d): %v", sig, pid, err)
		}
	}
}

// endDozods sends sig (SIGTERM or SIGKILL) to every dozod of the stack
// and waits until all are gone.
func (s *stack) endDozods(t testing.TB, sig syscall.Signal) {
	t.Helper()
	pids := s.dozodPids(t)
	for _, pid := range pids {
		syscall.Kill(pid, sig)
	}
	for _, pid := range pids {
		for i := 0; i < 200 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Fatalf("dozod (pid %d) did not end on %v", pid, sig)
		}
	}
}

// dozodLog returns the logs of every dozod of the stack, one after the
// other.
func (s *stack) dozodLog(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for i := 1; i <= s.dozods(); i++ {
		l, err := os.ReadFile(s.dozodFile(i, "log"))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(l)
		if len(l) > 0 && l[len(l)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// catalogLocation is the catalog setting of the stack's dozods: a SQLite
// file or a PostgreSQL URL without its password (usePGPassFile supplies
// it).
func (s *stack) catalogLocation(t testing.TB) catalog.Location {
	t.Helper()
	conf, err := os.ReadFile(s.dozodFile(1, "toml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^catalog = "(.*)"$`).FindSubmatch(conf)
	if m == nil {
		t.Fatalf("no catalog line in %s", s.dozodFile(1, "toml"))
	}
	loc, err := catalog.ParseLocation(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// usePGPassFile makes the dev stack's PostgreSQL password file (written
// by scripts/dev.sh for its dozods) this process's, so the tests' own
// connections and the dozods they start find the password as the stack's
// dozods do.
func (s *stack) usePGPassFile() error {
	f := filepath.Join(s.devDir, "pgpass")
	if _, err := os.Stat(f); err != nil {
		return nil // one dozod on SQLite
	}
	return os.Setenv("PGPASSFILE", f)
}

// pgPassword is the PostgreSQL password in the stack's password file.
func (s *stack) pgPassword(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.devDir, "pgpass"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.SplitN(strings.TrimSpace(string(b)), ":", 5) // host:port:db:user:password
	if len(f) != 5 {
		t.Fatal("pgpass: not host:port:database:user:password")
	}
	return f[4]
}

// catalogDB is the live catalog of the stack's dozods, opened for a test
// to read or tamper with, whichever backend it is. Queries are written
// as the catalog package writes them: ? placeholders (numbered for
// PostgreSQL here), "user" quoted, no dialect's own functions.
type catalogDB struct {
	*sql.DB
	postgres bool
}

// catalogDB opens the stack's catalog; it is closed when the test ends.
// On SQLite it waits for dozod's writes rather than failing on a busy
// database.
func (s *stack) catalogDB(t testing.TB) *catalogDB {
	t.Helper()
	loc := s.catalogLocation(t)
	var db *sql.DB
	var err error
	if loc.Backend == catalog.Postgres {
		db, err = sql.Open("pgx", loc.URL)
	} else {
		db, err = sql.Open("sqlite", "file:"+loc.Path+"?_pragma=busy_timeout(10000)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &catalogDB{DB: db, postgres: loc.Backend == catalog.Postgres}
}

func (db *catalogDB) Exec(q string, args ...any) (sql.Result, error) {
	return db.DB.Exec(db.rebind(q), args...)
}

func (db *catalogDB) Query(q string, args ...any) (*sql.Rows, error) {
	return db.DB.Query(db.rebind(q), args...)
}

func (db *catalogDB) QueryRow(q string, args ...any) *sql.Row {
	return db.DB.QueryRow(db.rebind(q), args...)
}

// rebind numbers q's ? placeholders for PostgreSQL ($1, $2, ...), leaving
// those inside '…' literals alone.
func (db *catalogDB) rebind(q string) string {
	if !db.postgres {
		return q
	}
	var b strings.Builder
	n, quoted := 0, false
	for _, r := range q {
		switch {
		case r == '\'':
			quoted = !quoted
		case r == '?' && !quoted:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// openCatalogAPI opens the stack's catalog through the catalog package,
// closed when the test ends.
func (s *stack) openCatalogAPI(t testing.TB) *catalog.Catalog {
	t.Helper()
	loc := s.catalogLocation(t)
	where := loc.Path
	if loc.Backend == catalog.Postgres {
		where = loc.URL
	}
	cat, err := catalog.Open(testContext(t), where)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}

// loseCatalog stops every dozod and takes their catalog away, as a lost
// disk would: the SQLite file (with its -wal and -shm) is moved aside, or
// the PostgreSQL database renamed and an empty one created in its place.
// The returned func, run when the test ends at the latest, stops the
// dozods again, puts the old catalog back and starts them.
func (s *stack) loseCatalog(t testing.TB) (restore func()) {
	t.Helper()
	s.endDozods(t, syscall.SIGTERM)
	// Made before restore is registered: cleanups run last first, and the
	// directory must outlive restore.
	aside := t.TempDir()
	var putBack func() error
	var once sync.Once
	restore = func() {
		once.Do(func() {
			s.endDozods(t, syscall.SIGTERM)
			if putBack != nil {
				if err := putBack(); err != nil {
					t.Errorf("putting the catalog back: %v", err)
				}
			}
			if err := s.dev("up"); err != nil {
				t.Error(err)
			}
		})
	}
	// Registered first: the dozods come back even if taking the catalog
	// away fails half way.
	t.Cleanup(restore)
	loc := s.catalogLocation(t)
	if loc.Backend == catalog.Postgres {
		s.losePostgresCatalog(t, loc.URL, &putBack)
	} else {
		putBack = func() error {
			if _, err := os.Stat(filepath.Join(aside, "dozo.db")); err != nil {
				return nil // not moved aside
			}
			for _, suf := range []string{"", "-wal", "-shm"} {
				os.Remove(loc.Path + suf) // the new catalog's, all of it
			}
			for _, suf := range []string{"", "-wal", "-shm"} {
				if err := os.Rename(filepath.Join(aside, "dozo.db"+suf), loc.Path+suf); err != nil && !os.IsNotExist(err) {
					return err
				}
			}
			return nil
		}
		for _, suf := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(loc.Path+suf, filepath.Join(aside, "dozo.db"+suf)); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
	}
	return restore
}

// losePostgresCatalog renames the database of catalog URL u aside and
// creates an empty one under its name; putBack drops that one and renames
// the old one back (as far as they were done, should this fail half way).
// The dozods must be stopped.
func (s *stack) losePostgresCatalog(t testing.TB, u string, putBack *func() error) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(pu.Path, "/")
	if !regexp.MustCompile(`^[a-z_][a-z0-9_]*$`).MatchString(name) {
		t.Fatalf("catalog database name %q", name)
	}
	aside := fmt.Sprintf("%s_aside_%d", name, time.Now().UnixNano())
	// The stack's password file names the catalog's database only.
	pu.Path = "/postgres"
	pu.User = url.UserPassword(pu.User.Username(), s.pgPassword(t))
	admin, err := sql.Open("pgx", pu.String())
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string) error {
		_, err := admin.Exec(q)
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		return nil
	}
	renamed := false
	*putBack = func() error {
		defer admin.Close()
		if !renamed {
			return nil
		}
		for _, q := range []string{
			`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`,
			`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '` + aside + `' AND pid <> pg_backend_pid()`,
			`ALTER DATABASE ` + aside + ` RENAME TO ` + name,
		} {
			if err := exec(q); err != nil {
				return err
			}
		}
		return nil
	}
	// The test's own connections to the catalog (catalogDB) are ended,
	// so the database can be renamed.
	if err := exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '` + name + `' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	if err := exec(`ALTER DATABASE ` + name + ` RENAME TO ` + aside); err != nil {
		t.Fatal(err)
	}
	renamed = true
	if err := exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatal(err)
	}
}
