package integration

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ddbj/kura/storage"
	"github.com/ddbj/kura/vault"
)

// stack is the real MinIO + Vault stack the tests run against, started once
// per test binary by TestMain through scripts/stack.sh.
type stack struct {
	dir       string // KURA_STACK_DIR
	script    string
	endpoints []string
	buckets   []string
	accessKey string
	secretKey string
	vaultAddr string
	rootToken string
	owned     bool // started by this process, so stopped by it too
}

var (
	theStack   *stack
	stackError error
)

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		theStack, stackError = startStack()
	} else {
		stackError = fmt.Errorf("-short: integration stack not started")
	}
	code := m.Run()
	if theStack != nil && theStack.owned && os.Getenv("KURA_KEEP_STACK") == "" {
		_ = theStack.run("down")
	}
	os.Exit(code)
}

// startStack uses the stack named by KURA_STACK_DIR when it is already up,
// and otherwise starts a private one in a temporary directory.
func startStack() (*stack, error) {
	s := &stack{script: filepath.Join(repoRoot(), "scripts", "stack.sh")}
	if d := os.Getenv("KURA_STACK_DIR"); d != "" {
		s.dir = d
		if s.run("status") != nil {
			return nil, fmt.Errorf("KURA_STACK_DIR=%s is not a running stack (scripts/stack.sh status)", d)
		}
	} else {
		d, err := os.MkdirTemp("", "kura-it-")
		if err != nil {
			return nil, err
		}
		s.dir, s.owned = d, true
		if err := s.run("up"); err != nil {
			return nil, fmt.Errorf("scripts/stack.sh up: %w", err)
		}
	}
	return s, s.loadEnv()
}

func (s *stack) run(args ...string) error {
	cmd := exec.Command(s.script, args...)
	cmd.Env = append(os.Environ(), "KURA_STACK_DIR="+s.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (s *stack) loadEnv() error {
	f, err := os.Open(filepath.Join(s.dir, "env"))
	if err != nil {
		return err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			env[k] = strings.Trim(v, "'")
		}
	}
	s.endpoints = strings.Split(env["KURA_DEV_S3_ENDPOINTS"], ",")
	s.buckets = strings.Split(env["KURA_DEV_S3_BUCKETS"], ",")
	s.accessKey, s.secretKey = env["KURA_DEV_S3_ACCESS_KEY"], env["KURA_DEV_S3_SECRET_KEY"]
	s.vaultAddr, s.rootToken = env["VAULT_ADDR"], env["VAULT_TOKEN"]
	if len(s.endpoints) != 3 || s.accessKey == "" || s.vaultAddr == "" || s.rootToken == "" {
		return fmt.Errorf("incomplete env file %s", f.Name())
	}
	return sc.Err()
}

// needStack returns the stack or ends the test: under CI=true a missing
// stack is a failure, never a skip.
func needStack(t testing.TB) *stack {
	t.Helper()
	if theStack != nil {
		return theStack
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("integration stack unavailable under CI=true: %v", stackError)
	}
	t.Skipf("integration stack unavailable: %v", stackError)
	return nil
}

// targets returns the six S3 targets of the local stack: two buckets on
// each of three servers, each server its own failure domain.
func (s *stack) targets(t testing.TB) []storage.Target {
	t.Helper()
	var ts []storage.Target
	for i, ep := range s.endpoints {
		for _, b := range s.buckets {
			tg, err := storage.NewS3Target(storage.S3Config{
				ID:        fmt.Sprintf("s%d-%s", i+1, strings.TrimPrefix(b, "kura-")),
				Domain:    fmt.Sprintf("server%d", i+1),
				Endpoint:  ep,
				AccessKey: s.accessKey,
				SecretKey: s.secretKey,
				Bucket:    b,
			})
			if err != nil {
				t.Fatal(err)
			}
			ts = append(ts, tg)
		}
	}
	return ts
}

func (s *stack) vault(t testing.TB) *vault.Client {
	t.Helper()
	c, err := vault.New(vault.Config{Address: s.vaultAddr, Token: s.rootToken})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// stopMinio stops server n (1-based) until the returned func restarts it
// (at the latest when the test ends). Integration tests do not run in
// parallel, so no other test sees the server down.
func (s *stack) stopMinio(t testing.TB, n int) (restart func()) {
	t.Helper()
	if err := s.run("stop-minio", fmt.Sprint(n)); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restart = func() {
		once.Do(func() {
			if err := s.run("start-minio", fmt.Sprint(n)); err != nil {
				t.Errorf("restarting minio%d: %v", n, err)
			}
		})
	}
	t.Cleanup(restart)
	return restart
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
