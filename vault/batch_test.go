package vault

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// The tests in this file run against a real Vault: a dev server (in
// memory) started once for the package, from $DOZO_TOOLS_DIR/bin (default
// ~/.cache/dozo/tools/bin, where scripts/tools.sh installs it) or PATH.
// Without one they are skipped, except under CI=true; -short skips them.

var devVault struct {
	once      sync.Once
	cmd       *exec.Cmd
	addr      string
	token     string
	unsealKey string
	err       error
	skip      string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if devVault.cmd != nil {
		devVault.cmd.Process.Kill()
		devVault.cmd.Wait()
	}
	os.Exit(code)
}

func vaultBinary() (string, error) {
	var dirs []string
	if d := os.Getenv("DOZO_TOOLS_DIR"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"), d)
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "dozo", "tools", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "vault")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath("vault")
}

// realVault returns the address and root token of the package's dev Vault,
// with Transit mounted, starting it on first use.
func realVault(t *testing.T) (addr, token string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Vault server")
	}
	devVault.once.Do(startDevVault)
	if devVault.skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(devVault.skip)
		}
		t.Skip(devVault.skip)
	}
	if devVault.err != nil {
		t.Fatal(devVault.err)
	}
	return devVault.addr, devVault.token
}

var unsealKeyRE = regexp.MustCompile(`Unseal Key: (\S+)`)

func startDevVault() {
	bin, err := vaultBinary()
	if err != nil {
		devVault.skip = "no vault binary: " + err.Error()
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		devVault.err = err
		return
	}
	hostPort := l.Addr().String()
	l.Close()
	tok := make([]byte, 16)
	rand.Read(tok)
	devVault.token = hex.EncodeToString(tok)
	devVault.addr = "http://" + hostPort
	cmd := exec.Command(bin, "server", "-dev", "-dev-no-store-token", "-dev-root-token-id="+devVault.token, "-dev-listen-address="+hostPort)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	dieWithTest(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		devVault.err = err
		return
	}
	if err := cmd.Start(); err != nil {
		devVault.err = err
		return
	}
	devVault.cmd = cmd
	// The dev server prints its unseal key on start, before it serves.
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := unsealKeyRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		close(found)
	}()
	select {
	case devVault.unsealKey = <-found:
	case <-time.After(2 * time.Minute):
	}
	if devVault.unsealKey == "" {
		devVault.err = errors.New("the dev Vault printed no unseal key")
		return
	}
	c, err := New(Config{Address: devVault.addr, Token: devVault.token, Timeout: 10 * time.Second})
	if err != nil {
		devVault.err = err
		return
	}
	for start := time.Now(); ; {
		err = c.Health(context.Background())
		if err == nil || time.Since(start) > 2*time.Minute {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		devVault.err = fmt.Errorf("the dev Vault did not come up: %w", err)
		return
	}
	devVault.err = c.API().Sys().Mount("transit", &api.MountInput{Type: "transit"})
}

// gate is a pass-through proxy in front of the dev Vault that counts the
// ciphertexts in each decrypt request, and can hold the next decrypt
// request of a key until the test releases it, or drop decrypt requests
// as a dead Vault would.
type gate struct {
	srv *httptest.Server

	mu       sync.Mutex
	holdKey  string
	drop     bool
	decrypts []int // ciphertexts per decrypt request, in arrival order
	held     chan chan struct{}
}

func newGate(t *testing.T) *gate {
	addr, _ := realVault(t)
	target, _ := url.Parse(addr)
	g := &gate{held: make(chan chan struct{}, 16)}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, key, ok := strings.Cut(r.URL.Path, "/transit/decrypt/"); ok {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var in struct {
				BatchInput []any `json:"batch_input"`
			}
			json.Unmarshal(body, &in)
			g.mu.Lock()
			g.decrypts = append(g.decrypts, max(1, len(in.BatchInput)))
			hold := key == g.holdKey
			if hold {
				g.holdKey = ""
			}
			g.mu.Unlock()
			if hold {
				release := make(chan struct{})
				g.held <- release
				<-release
			}
			g.mu.Lock()
			drop := g.drop
			g.mu.Unlock()
			if drop {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// holdNext holds the next decrypt request under key (one only: the
// client's retries of it pass).
func (g *gate) holdNext(key string) {
	g.mu.Lock()
	g.holdKey = key
	g.mu.Unlock()
}

func (g *gate) seen() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.decrypts...)
}

// waitFor polls cond until it holds; it fails the test after a minute
// rather than hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatalf("never: %s", what)
		}
	}
}

func (b *Batcher) queued(name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q := b.queues[name]; q != nil {
		return len(q.waiting)
	}
	return 0
}

type decryptResult struct {
	pt  []byte
	err error
}

// start runs b.Decrypt in the background.
func start(ctx context.Context, b *Batcher, key, ct string, ad []byte) <-chan decryptResult {
	ch := make(chan decryptResult, 1)
	go func() {
		pt, err := b.Decrypt(ctx, key, ct, ad)
		ch <- decryptResult{pt, err}
	}()
	return ch
}

// batchFixture is a Transit key with n file keys wrapped under it, each
// bound to its own associated data, and a Batcher and a plain Client on
// the gate.
type batchFixture struct {
	g     *gate
	plain *Client // straight to Vault, for expected answers
	b     *Batcher
	key   string
	pts   [][]byte
	ads   [][]byte
	cts   []string
}

func newBatchFixture(t *testing.T, n int) *batchFixture {
	g := newGate(t)
	addr, token := realVault(t)
	plain, err := New(Config{Address: addr, Token: token, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Address: g.srv.URL, Token: token, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := &batchFixture{g: g, plain: plain, b: NewBatcher(c), key: fmt.Sprintf("batch-%s-%d", strings.ToLower(t.Name()), time.Now().UnixNano())}
	ctx := context.Background()
	if err := plain.CreateKey(ctx, f.key); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		pt := make([]byte, 16)
		rand.Read(pt)
		ad := []byte(fmt.Sprintf("dozo/v1 file-key\x00file-%d", i))
		ct, err := plain.Encrypt(ctx, f.key, pt, ad)
		if err != nil {
			t.Fatal(err)
		}
		f.pts, f.ads, f.cts = append(f.pts, pt), append(f.ads, ad), append(f.cts, ct)
	}
	return f
}

// holdLeader sends the decrypt of item 0 and waits until the gate holds
// it: from then on, every decrypt under the key queues behind it.
func (f *batchFixture) holdLeader(t *testing.T) (<-chan decryptResult, chan struct{}) {
	f.g.holdNext(f.key)
	r := start(context.Background(), f.b, f.key, f.cts[0], f.ads[0])
	return r, <-f.g.held
}

// TestBatcherAnswersEachCaller: decrypts that queue behind one in flight
// go to Vault as one batch request, and each caller gets what a request
// of its own gets: its plaintext, or for a wrong associated data, a
// malformed or too new ciphertext, exactly the error Client.Decrypt
// gives, while the others in the same batch succeed.
func TestBatcherAnswersEachCaller(t *testing.T) {
	const n = 40
	f := newBatchFixture(t, n)
	ctx := context.Background()
	type call struct {
		ct string
		ad []byte
	}
	calls := []call{}
	for i := 1; i < n; i++ {
		calls = append(calls, call{f.cts[i], f.ads[i]})
	}
	v := strings.SplitN(f.cts[2], ":", 3)
	bad := []call{
		{f.cts[1], f.ads[2]},                   // another file's associated data
		{f.cts[3], nil},                        // none
		{"vault:v1:AAAA", f.ads[4]},            // too short
		{"vault:v9:" + v[2], f.ads[2]},         // a version the key does not have
		{"not-a-transit-ciphertext", f.ads[5]}, // no prefix
		{"vault:v1:!!!notbase64!!!", f.ads[6]}, // not base64
		{strings.Replace(f.cts[7], "vault:v1:", "vault:v1:A", 1), f.ads[7]}, // shifted
	}
	calls = append(calls, bad...)
	want := make([]decryptResult, len(calls))
	for i, c := range calls {
		pt, err := f.plain.Decrypt(ctx, f.key, c.ct, c.ad)
		want[i] = decryptResult{pt, err}
	}
	for i := range bad {
		if want[n-1+i].err == nil {
			t.Fatalf("bad call %d decrypts", i)
		}
	}

	leader, release := f.holdLeader(t)
	got := make([]<-chan decryptResult, len(calls))
	for i, c := range calls {
		got[i] = start(ctx, f.b, f.key, c.ct, c.ad)
	}
	waitFor(t, "every call queued", func() bool { return f.b.queued(f.key) == len(calls) })
	close(release)
	if r := <-leader; r.err != nil || !bytes.Equal(r.pt, f.pts[0]) {
		t.Fatalf("leader: %v", r.err)
	}
	for i, ch := range got {
		r := <-ch
		switch {
		case want[i].err != nil:
			if r.err == nil || r.err.Error() != want[i].err.Error() {
				t.Errorf("call %d: error %v, want %v", i, r.err, want[i].err)
			}
		case r.err != nil || !bytes.Equal(r.pt, want[i].pt):
			t.Errorf("call %d: %v, %x; want %x", i, r.err, r.pt, want[i].pt)
		}
	}
	if s := f.g.seen(); len(s) != 2 || s[0] != 1 || s[1] != len(calls) {
		t.Errorf("decrypt requests carried %v ciphertexts, want [1 %d]", s, len(calls))
	}
	if f.b.queued(f.key) != 0 || len(f.b.queues) != 0 {
		t.Errorf("queues left behind: %v", f.b.queues)
	}
	// Alone again, a call goes straight out, as a plain decrypt.
	if pt, err := f.b.Decrypt(ctx, f.key, f.cts[5], f.ads[5]); err != nil || !bytes.Equal(pt, f.pts[5]) {
		t.Fatalf("lone decrypt: %v", err)
	}
	if s := f.g.seen(); len(s) != 3 || s[2] != 1 {
		t.Errorf("lone decrypt: requests %v", s)
	}
}

// TestBatcherRetiredVersion: a ciphertext under a key version Transit no
// longer decrypts fails alone, with Client.Decrypt's error, beside one
// under the current version.
func TestBatcherRetiredVersion(t *testing.T) {
	f := newBatchFixture(t, 2)
	ctx := context.Background()
	if err := f.plain.Rotate(ctx, f.key); err != nil {
		t.Fatal(err)
	}
	ad := []byte("file-v2")
	pt := []byte("0123456789abcdef")
	ct2, err := f.plain.Encrypt(ctx, f.key, pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	v := 2
	if err := f.plain.ConfigureKey(ctx, f.key, KeyConfig{MinDecryptionVersion: &v}); err != nil {
		t.Fatal(err)
	}
	_, want := f.plain.Decrypt(ctx, f.key, f.cts[1], f.ads[1])
	if want == nil {
		t.Fatal("a retired version decrypts")
	}
	f.g.holdNext(f.key)
	leader := start(ctx, f.b, f.key, ct2, ad)
	release := <-f.g.held
	old := start(ctx, f.b, f.key, f.cts[1], f.ads[1])
	cur := start(ctx, f.b, f.key, ct2, ad)
	waitFor(t, "two queued", func() bool { return f.b.queued(f.key) == 2 })
	close(release)
	for _, ch := range []<-chan decryptResult{leader, cur} {
		if r := <-ch; r.err != nil || !bytes.Equal(r.pt, pt) {
			t.Errorf("current version: %v", r.err)
		}
	}
	if r := <-old; r.err == nil || r.err.Error() != want.Error() {
		t.Errorf("retired version: %v, want %v", r.err, want)
	}
	if s := f.g.seen(); len(s) != 2 || s[1] != 2 {
		t.Errorf("decrypt requests carried %v ciphertexts, want [1 2]", s)
	}
}

// TestBatcherCallerLeaves: a caller whose context ends returns at once
// with the caller's error (not Vault's), whether it was still queued or
// already sent; it is not sent once it left, and the others are answered.
func TestBatcherCallerLeaves(t *testing.T) {
	f := newBatchFixture(t, 5)
	ctx := context.Background()
	leader, release := f.holdLeader(t)
	a := start(ctx, f.b, f.key, f.cts[1], f.ads[1])
	waitFor(t, "a queued", func() bool { return f.b.queued(f.key) == 1 })
	cctx, cancel := context.WithCancel(ctx)
	gone := start(cctx, f.b, f.key, f.cts[2], f.ads[2])
	c := start(ctx, f.b, f.key, f.cts[3], f.ads[3])
	waitFor(t, "three queued", func() bool { return f.b.queued(f.key) == 3 })
	cancel()
	if r := <-gone; !errors.Is(r.err, context.Canceled) || errors.Is(r.err, ErrUnavailable) || r.pt != nil {
		t.Fatalf("queued caller that left: %v, want context.Canceled only", r.err)
	}
	if q := f.b.queued(f.key); q != 2 {
		t.Fatalf("%d queued after one left, want 2", q)
	}
	// The batch of a, c and d is held in its turn; d leaves while it is out.
	dctx, dcancel := context.WithCancel(ctx)
	d := start(dctx, f.b, f.key, f.cts[4], f.ads[4])
	waitFor(t, "d queued", func() bool { return f.b.queued(f.key) == 3 })
	f.g.holdNext(f.key)
	close(release)
	if r := <-leader; r.err != nil {
		t.Fatal(r.err)
	}
	batch := <-f.g.held
	dcancel()
	if r := <-d; !errors.Is(r.err, context.Canceled) || r.pt != nil {
		t.Fatalf("sent caller that left: %v, want context.Canceled", r.err)
	}
	close(batch)
	for i, ch := range map[int]<-chan decryptResult{1: a, 3: c} {
		if r := <-ch; r.err != nil || !bytes.Equal(r.pt, f.pts[i]) {
			t.Errorf("caller %d: %v", i, r.err)
		}
	}
	if s := f.g.seen(); len(s) != 2 || s[0] != 1 || s[1] != 3 {
		t.Errorf("decrypt requests carried %v ciphertexts, want [1 3]", s)
	}
}

// TestBatcherSkipsGoneCallers: callers that left are never sent, even a
// whole batch's worth of them (caught between leaving and taking
// themselves off the queue); those after them are.
func TestBatcherSkipsGoneCallers(t *testing.T) {
	f := newBatchFixture(t, 2)
	ctx := context.Background()
	leader, release := f.holdLeader(t)
	f.b.mu.Lock()
	q := f.b.queues[f.key]
	for range maxDecryptBatch + 1 {
		d := &decryptCall{ciphertext: f.cts[1], ad: f.ads[1], ready: make(chan struct{})}
		d.leave()
		q.waiting = append(q.waiting, d)
	}
	f.b.mu.Unlock()
	// A caller left behind would wait for ever: its deadline makes that
	// a failure.
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	live := start(lctx, f.b, f.key, f.cts[1], f.ads[1])
	waitFor(t, "the live caller queued", func() bool { return f.b.queued(f.key) == maxDecryptBatch+2 })
	close(release)
	if r := <-leader; r.err != nil {
		t.Fatal(r.err)
	}
	if r := <-live; r.err != nil || !bytes.Equal(r.pt, f.pts[1]) {
		t.Fatalf("the caller after those that left: %v", r.err)
	}
	if s := f.g.seen(); len(s) != 2 || s[1] != 1 {
		t.Errorf("decrypt requests carried %v ciphertexts, want [1 1]", s)
	}
}

// TestBatcherVaultSealed: when Vault is sealed under a request in flight,
// that request's caller and every caller queued behind it fail with the
// error a plain decrypt gets from a sealed Vault (ErrUnavailable), at
// once; so do the callers of a batch that finds Vault sealed. Once
// unsealed, decrypts work again.
func TestBatcherVaultSealed(t *testing.T) {
	f := newBatchFixture(t, 6)
	ctx := context.Background()
	sys := f.plain.API().Sys()
	unseal := func() {
		if _, err := sys.Unseal(devVault.unsealKey); err != nil {
			t.Fatalf("unsealing: %v", err)
		}
		waitFor(t, "unsealed Vault healthy", func() bool { return f.plain.Health(ctx) == nil })
	}
	t.Cleanup(func() {
		if st, err := sys.SealStatus(); err == nil && st.Sealed {
			unseal()
		}
	})
	check := func(what string, want error, rs ...<-chan decryptResult) {
		t.Helper()
		for i, ch := range rs {
			r := <-ch
			if !errors.Is(r.err, ErrUnavailable) || r.err.Error() != want.Error() || r.pt != nil {
				t.Errorf("%s, caller %d: %v, want %v", what, i, r.err, want)
			}
		}
	}

	// The single request in flight finds Vault sealed.
	leader, release := f.holdLeader(t)
	a := start(ctx, f.b, f.key, f.cts[1], f.ads[1])
	b := start(ctx, f.b, f.key, f.cts[2], f.ads[2])
	waitFor(t, "two queued", func() bool { return f.b.queued(f.key) == 2 })
	if err := sys.Seal(); err != nil {
		t.Fatal(err)
	}
	_, want := f.plain.Decrypt(ctx, f.key, f.cts[1], f.ads[1])
	if !errors.Is(want, ErrUnavailable) {
		t.Fatalf("plain decrypt on a sealed Vault: %v", want)
	}
	close(release)
	check("sealed under the leader", want, leader, a, b)
	for _, n := range f.g.seen() {
		if n != 1 { // the leader, and the client's retries of it
			t.Errorf("the queued callers were sent: requests %v", f.g.seen())
		}
	}
	unseal()

	// The batch request finds Vault sealed.
	leader, release = f.holdLeader(t)
	a = start(ctx, f.b, f.key, f.cts[3], f.ads[3])
	b = start(ctx, f.b, f.key, f.cts[4], f.ads[4])
	waitFor(t, "two queued", func() bool { return f.b.queued(f.key) == 2 })
	f.g.holdNext(f.key)
	close(release)
	if r := <-leader; r.err != nil {
		t.Fatal(r.err)
	}
	batch := <-f.g.held
	if err := sys.Seal(); err != nil {
		t.Fatal(err)
	}
	close(batch)
	check("sealed under the batch", want, a, b)
	unseal()
	if pt, err := f.b.Decrypt(ctx, f.key, f.cts[5], f.ads[5]); err != nil || !bytes.Equal(pt, f.pts[5]) {
		t.Fatalf("after unsealing: %v", err)
	}
}

// TestBatcherVaultUnreachable: a Vault whose connections die fails the
// batch's callers closed, with ErrUnavailable, like a plain decrypt.
func TestBatcherVaultUnreachable(t *testing.T) {
	f := newBatchFixture(t, 3)
	ctx := context.Background()
	leader, release := f.holdLeader(t)
	a := start(ctx, f.b, f.key, f.cts[1], f.ads[1])
	b := start(ctx, f.b, f.key, f.cts[2], f.ads[2])
	waitFor(t, "two queued", func() bool { return f.b.queued(f.key) == 2 })
	f.g.holdNext(f.key)
	close(release)
	if r := <-leader; r.err != nil {
		t.Fatal(r.err)
	}
	batch := <-f.g.held
	f.g.mu.Lock()
	f.g.drop = true
	f.g.mu.Unlock()
	close(batch)
	for i, ch := range []<-chan decryptResult{a, b} {
		if r := <-ch; !errors.Is(r.err, ErrUnavailable) || r.pt != nil {
			t.Errorf("caller %d: %v, want ErrUnavailable", i, r.err)
		}
	}
	_, err := f.b.Decrypt(ctx, f.key, f.cts[1], f.ads[1])
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("plain decrypt through the dead proxy: %v", err)
	}
}

// TestBatcherKeysApart: a decrypt held under one key does not hold up one
// under another key.
func TestBatcherKeysApart(t *testing.T) {
	f := newBatchFixture(t, 2)
	other := newBatchFixture(t, 1)
	other.b = f.b // the same Batcher, another key
	leader, release := f.holdLeader(t)
	pt, err := f.b.Decrypt(context.Background(), other.key, other.cts[0], other.ads[0])
	if err != nil || !bytes.Equal(pt, other.pts[0]) {
		t.Fatalf("decrypt under another key: %v", err)
	}
	close(release)
	if r := <-leader; r.err != nil {
		t.Fatal(r.err)
	}
}

// A result nobody is left to take is zeroed.
func TestDecryptCallZeroesAbandonedPlaintext(t *testing.T) {
	d := &decryptCall{ready: make(chan struct{})}
	if !d.leave() {
		t.Fatal("a caller without a result could not leave")
	}
	pt := []byte("0123456789abcdef")
	if d.deliver(pt, nil) {
		t.Fatal("delivered to a caller that left")
	}
	if !bytes.Equal(pt, make([]byte, len(pt))) {
		t.Fatalf("abandoned plaintext kept: %q", pt)
	}
	if d.plaintext != nil {
		t.Fatal("abandoned plaintext stored")
	}
	// A caller whose result is there takes it rather than leave.
	e := &decryptCall{ready: make(chan struct{})}
	e.deliver([]byte("k"), nil)
	if e.leave() {
		t.Fatal("left with a result waiting")
	}
}
