package integration

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// user is one person with their own dozo config dir, logged in through
// Vault userpass by the real CLI.
type user struct {
	name, password string
	dir            string
	s              *stack
}

func (s *stack) login(t testing.TB, name, password string) *user {
	t.Helper()
	u := &user{name: name, password: password, dir: t.TempDir(), s: s}
	if _, errOut, err := u.dozoIn(strings.NewReader(password+"\n"), "login", "--username", name, "--password-stdin"); err != nil {
		t.Fatalf("login %s: %v: %s", name, err, errOut)
	}
	return u
}

// newUser creates a Vault userpass user with no dozo role.
func (s *stack) newUser(t testing.TB) *user {
	t.Helper()
	name := fmt.Sprintf("it%d", time.Now().UnixNano()%1e12)
	pw := "pw-" + name + "-long-enough"
	if _, err := s.vault(t).API().Logical().Write("auth/userpass/users/"+name,
		map[string]any{"password": pw, "token_policies": "default", "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	return s.login(t, name, pw)
}

func (u *user) dozo(args ...string) (string, string, error) { return u.dozoIn(nil, args...) }

func (u *user) dozoIn(stdin io.Reader, args ...string) (string, string, error) {
	cmd := u.command(args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (u *user) command(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(u.s.bin, "dozo"), args...)
	cmd.Env = append(os.Environ(),
		"DOZO_CONFIG_DIR="+u.dir,
		"DOZO_BROKER="+u.s.env["DOZO_BROKER"],
		"DOZO_CA_CERT="+u.s.env["DOZO_CA_CERT"],
		"VAULT_ADDR="+u.s.vaultAddr,
		"DOZO_LANG=en", // the tests read English, whatever the machine's locale
	)
	return cmd
}

// must runs dozo and fails the test on a non-zero exit.
func (u *user) must(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := u.dozo(args...)
	if err != nil {
		t.Fatalf("dozo %s (as %s): %v\n%s", strings.Join(args, " "), u.name, err, errOut)
	}
	return out
}

// refused runs dozo, expects a non-zero exit with one clear line on
// stderr, and returns that line.
func (u *user) refused(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := u.dozo(args...)
	if err == nil {
		t.Fatalf("dozo %s (as %s) succeeded, want a refusal; stdout: %s", strings.Join(args, " "), u.name, out)
	}
	// The day's warnings about grants ending soon come first, each on a
	// line of its own; the refusal is what follows them.
	var rest []string
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if !strings.HasPrefix(l, "dozo: warning: ") {
			rest = append(rest, l)
		}
	}
	line := strings.Join(rest, "\n")
	if !strings.HasPrefix(line, "dozo: ") || strings.Count(line, "\n") != 0 {
		t.Fatalf("dozo %s: refusal is not one 'dozo: ...' line: %q", strings.Join(args, " "), errOut)
	}
	return line
}

func (s *stack) users(t testing.TB) (submitter, researcher *user) {
	t.Helper()
	submitter = s.login(t, s.env["DOZO_DEV_SUBMITTER"], s.env["DOZO_DEV_SUBMITTER_PASSWORD"])
	submitter.must(t, "keygen", "--classic")
	submitter.must(t, "key", "register")
	researcher = s.login(t, s.env["DOZO_DEV_RESEARCHER"], s.env["DOZO_DEV_RESEARCHER_PASSWORD"])
	researcher.must(t, "keygen") // post-quantum hybrid by default
	researcher.must(t, "key", "register")
	return submitter, researcher
}

func writeRandomFile(t testing.TB, path string, seed uint64, size int64, marker []byte) (sha string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	w := io.MultiWriter(f, h)
	if len(marker) > 0 {
		// A plaintext marker every MiB, for the no-plaintext-on-storage scan.
		src := randomReader(seed, size)
		buf := make([]byte, mib)
		for {
			n, err := io.ReadFull(src, buf)
			if n > len(marker) {
				copy(buf[100:], marker)
			}
			w.Write(buf[:n])
			if err != nil {
				break
			}
		}
	} else if _, err := io.Copy(w, randomReader(seed, size)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeRandomFiles writes n files of random bytes into dir: the i-th is
// named fmt.Sprintf(pattern, i), seeded seed+i and size(i) bytes long. It
// returns their paths, in order, and their SHA-256 by name.
func writeRandomFiles(t testing.TB, dir, pattern string, n int, seed uint64, size func(i int) int64) (paths []string, sha map[string]string) {
	t.Helper()
	sha = map[string]string{}
	for i := range n {
		name := fmt.Sprintf(pattern, i)
		p := filepath.Join(dir, name)
		sha[name] = writeRandomFile(t, p, seed+uint64(i), size(i), nil)
		paths = append(paths, p)
	}
	return paths, sha
}

// uploadRandomFiles writes n files of random bytes into dir as
// writeRandomFiles does and uploads them to dataset ds in one dozo upload,
// with args (such as --broker URL) before the command. It returns their
// SHA-256 by name.
func (u *user) uploadRandomFiles(t testing.TB, ds, dir, pattern string, n int, seed uint64, size func(i int) int64, args ...string) map[string]string {
	t.Helper()
	paths, sha := writeRandomFiles(t, dir, pattern, n, seed, size)
	cmd := append(append([]string{}, args...), "upload", "--dataset", ds)
	u.must(t, append(cmd, paths...)...)
	return sha
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

func lsFiles(t testing.TB, u *user, ds string) map[string]api.File {
	t.Helper()
	var files []api.File
	if err := json.Unmarshal([]byte(u.must(t, "ls", ds, "--json")), &files); err != nil {
		t.Fatal(err)
	}
	out := map[string]api.File{}
	for _, f := range files {
		out[f.Name] = f
	}
	return out
}

func newDatasetID() string { return fmt.Sprintf("JGAD%09d", time.Now().UnixNano()%1e9) }

// pieceStates records the ETag and modification time of every object of a
// dataset on every target, to show later operations left them alone.
func (s *stack) pieceStates(t testing.TB, ds string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tg := range s.targets(t) {
		err := tg.List(context.Background(), storage.DatasetPrefix(ds), func(oi storage.ObjectInfo) error {
			if strings.Contains(oi.Key, "/seg-") {
				out[tg.ID()+"/"+oi.Key] = oi.ETag + " " + oi.ModTime.String()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestCLIUploadGrantFetch is dozo's main job through the real CLI and
// dozod: a submitter uploads a file of several segments, a researcher is
// refused, granted, fetches it byte-identical (whole, as a range, raw for
// the stock age CLI), and is refused again after revoke.
func TestCLIUploadGrantFetch(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "integration test", "--segment-size", "4MiB")

	dir := t.TempDir()
	src := filepath.Join(dir, "NA12878.cram")
	marker := []byte("PLAINTEXT-MARKER-dozo-integration")
	const size = 18*mib + 4321
	want := writeRandomFile(t, src, 11, size, marker)
	var up []struct {
		SHA256, MD5, State string
		Segments           int
	}
	if err := json.Unmarshal([]byte(sam.must(t, "upload", "--dataset", ds, src, "--json")), &up); err != nil {
		t.Fatal(err)
	}
	if len(up) != 1 || up[0].SHA256 != want || up[0].State != api.FileAvailable || up[0].Segments != 5 {
		t.Fatalf("upload result %+v, want sha %s, available, 5 segments", up, want)
	}
	b, _ := os.ReadFile(src)
	if md := md5.Sum(b); up[0].MD5 != hex.EncodeToString(md[:]) {
		t.Fatalf("md5 %s, want %x", up[0].MD5, md)
	}
	if f := lsFiles(t, sam, ds)["NA12878.cram"]; f.Size != size || f.SHA256 != want || f.State != api.FileAvailable {
		t.Fatalf("ls shows %+v", f)
	}

	// No grant: refused, no bytes, no file left behind; and the refusal
	// does not say whether the dataset exists.
	out := filepath.Join(dir, "fetched.cram")
	line := rita.refused(t, "fetch", ds+"/NA12878.cram", "-o", out)
	lineMissing := rita.refused(t, "fetch", "JGAD000000000/NA12878.cram", "-o", out)
	if strings.ReplaceAll(line, ds, "X") != strings.ReplaceAll(lineMissing, "JGAD000000000", "X") {
		t.Errorf("refusal for an existing dataset differs from a missing one:\n%s\n%s", line, lineMissing)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("a refused fetch left a file")
	}

	before := s.pieceStates(t, ds)
	until := time.Now().AddDate(0, 0, 30).Format("2006-01-02")
	sam.must(t, "grant", ds, rita.name, "--until", until, "--application", "J-DU000001", "--institution", "NIG")
	if after := s.pieceStates(t, ds); fmt.Sprint(after) != fmt.Sprint(before) || len(after) != 5*6 {
		t.Fatalf("granting touched payload objects (%d before, %d after)", len(before), len(after))
	}

	rita.must(t, "fetch", ds+"/NA12878.cram", "-o", out)
	if got := fileSHA(t, out); got != want {
		t.Fatalf("fetched sha %s, want %s", got, want)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("fetched file mode %v is readable by others", fi.Mode())
	}

	// A 1 MiB range from the middle.
	rng := filepath.Join(dir, "range.bin")
	const off = 9*mib + 17
	rita.must(t, "fetch", ds+"/NA12878.cram", "-o", rng, "--range", fmt.Sprintf("%d-%d", off, off+mib-1))
	got, _ := os.ReadFile(rng)
	if !bytes.Equal(got, b[off:off+mib]) {
		t.Fatal("range fetch differs")
	}

	// Streaming to stdout.
	stdout, errOut, err := rita.dozo("fetch", ds+"/NA12878.cram", "-o", "-")
	if err != nil || !bytes.Equal([]byte(stdout), b) {
		t.Fatalf("fetch -o - failed or differs: %v %s", err, errOut)
	}

	// --raw is a standard age file for the researcher's identity.
	raw := filepath.Join(dir, "raw.age")
	rita.must(t, "fetch", ds+"/NA12878.cram", "-o", raw, "--raw")
	dec, err := exec.Command(findTool(t, "age"), "-d", "-i", filepath.Join(rita.dir, "identity.age"), raw).Output()
	if err != nil {
		t.Fatalf("age -d of --raw output: %v", err)
	}
	if !bytes.Equal(dec, b) {
		t.Fatal("age -d of --raw output differs")
	}

	// Storage never holds plaintext.
	scanned := 0
	for _, tg := range s.targets(t) {
		tg.List(context.Background(), storage.DatasetPrefix(ds), func(oi storage.ObjectInfo) error {
			rc, err := tg.Get(context.Background(), oi.Key, 0, -1)
			if err != nil {
				return err
			}
			defer rc.Close()
			obj, _ := io.ReadAll(rc)
			scanned++
			if bytes.Contains(obj, marker) {
				t.Errorf("object %s on %s holds plaintext", oi.Key, tg.ID())
			}
			return nil
		})
	}
	if scanned < 5*6 {
		t.Fatalf("scanned only %d objects", scanned)
	}

	// Revoked: refused at once, no bytes.
	sam.must(t, "revoke", ds, rita.name, "--reason", "test")
	os.Remove(out)
	rita.refused(t, "fetch", ds+"/NA12878.cram", "-o", out)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("a fetch after revoke left a file")
	}

	// Expired: a grant whose last day has passed (the test ages it in the
	// catalog; dozod itself refuses to grant into the past).
	sam.must(t, "grant", ds, rita.name, "--until", until, "--application", "J-DU000001", "--institution", "NIG")
	rita.must(t, "fetch", ds+"/NA12878.cram", "-o", out, "--range", "0-9")
	os.Remove(out)
	res, err := s.catalogDB(t).Exec(`UPDATE grants SET until = ? WHERE dataset_id = ? AND "user" = ? AND revoked_at IS NULL`,
		time.Now().AddDate(0, 0, -1).Format("2006-01-02"), ds, rita.name)
	if err != nil {
		t.Fatalf("ageing the grant: %v", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatal("ageing the grant: no row")
	}
	rita.refused(t, "fetch", ds+"/NA12878.cram", "-o", out)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("a fetch with an expired grant left a file")
	}

	// A stranger with a valid Vault login sees nothing.
	stranger := s.newUser(t)
	stranger.must(t, "keygen", "--classic")
	stranger.must(t, "key", "register")
	stranger.refused(t, "fetch", ds+"/NA12878.cram", "-o", out)
	stranger.refused(t, "ls", ds)
	stranger.refused(t, "grant", ds, stranger.name, "--until", until, "--application", "J-DU000001", "--institution", "NIG")
}

// TestCLIUploadResume kills the client mid-file, then dozod, and shows
// that rerunning the upload completes without re-sending committed
// segments.
func TestCLIUploadResume(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "resume test", "--segment-size", "2MiB")
	src := filepath.Join(t.TempDir(), "reads.fastq")
	const size = 80 * mib
	want := writeRandomFile(t, src, 12, size, nil)

	cmd := sam.command("upload", "--dataset", ds, src)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until a few segments are committed, then kill the client.
	deadline := time.Now().Add(2 * time.Minute)
	for len(s.pieceStates(t, ds)) < 3*6 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if f, ok := lsFiles(t, sam, ds)["reads.fastq"]; ok && f.State == api.FileAvailable {
		t.Skip("upload finished before it could be interrupted")
	}
	seg0 := s.pieceStates(t, ds)

	// dozod dies and comes back; its state is in the catalog.
	s.killDozod(t)() // every dozod, started again

	var up []struct {
		SHA256, State string
		Resumed       bool
		Sent          int64 `json:"sent_bytes"`
	}
	if err := json.Unmarshal([]byte(sam.must(t, "upload", "--dataset", ds, src, "--json")), &up); err != nil {
		t.Fatal(err)
	}
	if len(up) != 1 || !up[0].Resumed || up[0].SHA256 != want || up[0].State != api.FileAvailable {
		t.Fatalf("rerun: %+v, want a resumed, available upload with sha %s", up, want)
	}
	if up[0].Sent >= size {
		t.Fatalf("rerun sent %d bytes: the whole file again", up[0].Sent)
	}
	// Pieces committed before the interruption were not rewritten.
	after := s.pieceStates(t, ds)
	kept := 0
	for k, v := range seg0 {
		if strings.Contains(k, "/seg-00000000/") {
			if after[k] != v {
				t.Errorf("%s was rewritten by the resumed upload", k)
			}
			kept++
		}
	}
	if kept != 6 {
		t.Fatalf("segment 0 had %d pieces before the rerun, want 6", kept)
	}
	out := filepath.Join(t.TempDir(), "back.fastq")
	sam.must(t, "fetch", ds+"/reads.fastq", "-o", out)
	if fileSHA(t, out) != want {
		t.Fatal("resumed upload fetches back different bytes")
	}
}

// TestBrokerRejectsBadInput: bad input gets a clear error and changes
// nothing.
func TestBrokerRejectsBadInput(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "bad input")
	src := filepath.Join(t.TempDir(), "ok.vcf")
	writeRandomFile(t, src, 13, mib, nil)
	sam.must(t, "upload", "--dataset", ds, src)

	for _, args := range [][]string{
		{"dataset", "create", "../etc", "--title", "x"},
		{"dataset", "create", ds + "x", "--title", "x", "--rs", "300+1"},
		{"dataset", "create", ds + "y", "--title", "x", "--segment-size", "1000"},
		{"dataset", "show", "JGAD000000001"},
		{"upload", "--dataset", "JGAD000000001", src},
		{"upload", "--dataset", ds, "--name", "../../x", src},
		{"upload", "--dataset", ds, "--name", "a//b", src},
		{"upload", "--dataset", ds, "--name", "a/../b", src},
		{"grant", ds, "rita", "--until", "2001-01-01", "--application", "J-DU000001", "--institution", "NIG"},
		{"grant", ds, "rita", "--until", "tomorrow", "--application", "J-DU000001", "--institution", "NIG"},
		{"fetch", ds + "/ok.vcf", "-o", filepath.Join(t.TempDir(), "x"), "--range", "5-1"},
	} {
		sam.refused(t, args...)
	}
	if files := lsFiles(t, sam, ds); len(files) != 1 {
		t.Fatalf("bad input changed the dataset: %v", files)
	}

	// Raw HTTP: malformed, oversized and unknown-field bodies, forged token.
	tok, err := os.ReadFile(filepath.Join(sam.dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	hc := s.brokerHTTP(t)
	post := func(token, path, body string) (int, api.Error) {
		req, _ := http.NewRequest("POST", s.env["DOZO_BROKER"]+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	token := strings.TrimSpace(string(tok))
	for _, tc := range []struct {
		name, body string
		token      string
		want       int
	}{
		{"malformed", `{"id":`, token, 400},
		{"unknown field", `{"id":"` + ds + `z","title":"t","evil":1}`, token, 400},
		{"oversized", `{"id":"` + ds + `w","title":"` + strings.Repeat("a", 2<<20) + `"}`, token, 413},
		{"forged token", `{"id":"` + ds + `v","title":"t"}`, "hvs.forged", 401},
	} {
		code, e := post(tc.token, "/v1/datasets", tc.body)
		if code != tc.want || e.Error == "" {
			t.Errorf("%s: HTTP %d %+v, want %d with an error message", tc.name, code, e, tc.want)
		}
	}
	var list []api.Dataset
	if err := json.Unmarshal([]byte(sam.must(t, "dataset", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if strings.HasPrefix(d.ID, ds) && d.ID != ds {
			t.Errorf("bad input created dataset %s", d.ID)
		}
	}

	// A tampered manifest or header in the catalog: fetch fails clearly.
	// The bytes are changed here, not in SQL, so the same code works on
	// either catalog backend.
	db := s.catalogDB(t)
	tamper := func(column, old, new string) {
		t.Helper()
		var id string
		var b []byte
		if err := db.QueryRow(`SELECT id, `+column+` FROM files WHERE dataset_id = ? AND name = 'ok.vcf'`, ds).Scan(&id, &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("no %q in the %s", old, column)
		}
		if _, err := db.Exec(`UPDATE files SET `+column+` = ? WHERE id = ?`, bytes.ReplaceAll(b, []byte(old), []byte(new)), id); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "x")
	tamper("manifest", `"k":4`, `"k":3`)
	sam.refused(t, "fetch", ds+"/ok.vcf", "-o", out)
	tamper("manifest", `"k":3`, `"k":4`)
	tamper("header_object", "dozo-transit", "dozo-transiT")
	sam.refused(t, "fetch", ds+"/ok.vcf", "-o", out)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("a fetch of a tampered file left a file")
	}
}
