package integration

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// scrubFixture uploads n files of a few 1 MiB segments each (4+2) and
// returns the admin, the submitter, the dataset, and each file's local path
// and SHA-256 by name.
type scrubFixture struct {
	s          *stack
	admin, sam *user
	ds         string
	dir        string
	sha        map[string]string // name -> sha256 of the plaintext
}

func newScrubFixture(t *testing.T, n int) *scrubFixture {
	t.Helper()
	s := needStack(t)
	sam, _ := s.users(t)
	f := &scrubFixture{s: s, sam: sam, ds: newDatasetID(), dir: t.TempDir(),
		admin: s.login(t, s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])}
	sam.must(t, "dataset", "create", f.ds, "--title", "scrub test", "--segment-size", "1MiB")
	f.sha = sam.uploadRandomFiles(t, f.ds, f.dir, "sample%02d.cram", n, 100, func(i int) int64 { return 3*mib + int64(1000*(i+1)) })
	return f
}

// manifests reads the dataset's manifests from dozod's catalog, by name.
func (f *scrubFixture) manifests(t *testing.T) map[string]*storage.Manifest {
	t.Helper()
	rows, err := f.s.catalogDB(t).Query(`SELECT name, manifest FROM files WHERE dataset_id = ? AND state IN ('available', 'damaged')`, f.ds)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]*storage.Manifest{}
	for rows.Next() {
		var name string
		var mb []byte
		if err := rows.Scan(&name, &mb); err != nil {
			t.Fatal(err)
		}
		m, err := storage.ParseManifest(mb)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = m
	}
	return out
}

// scrub runs dozo scrub as the admin with --json and returns the report
// and the exit status.
func (f *scrubFixture) scrub(t *testing.T, args ...string) (api.ScrubRun, int, string) {
	t.Helper()
	out, errOut, err := f.admin.dozo(append([]string{"scrub", "--json"}, args...)...)
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var r api.ScrubRun
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
		t.Fatalf("dozo scrub %v: exit %d, %v\nstdout: %s\nstderr: %s", args, code, jerr, out, errOut)
	}
	return r, code, errOut
}

func (f *scrubFixture) fetchAll(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		out := filepath.Join(f.dir, "fetched-"+name)
		f.sam.must(t, "fetch", f.ds+"/"+name, "-o", out)
		if got := fileSHA(t, out); got != f.sha[name] {
			t.Fatalf("%s fetched with sha %s, want %s", name, got, f.sha[name])
		}
		os.Remove(out)
	}
}

func (f *scrubFixture) names() []string {
	var out []string
	for n := range f.sha {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func scrubKeys(fs []api.ScrubFinding) []string {
	out := []string{}
	for _, x := range fs {
		out = append(out, fmt.Sprintf("%s/%d/%d/%s/%s", x.File, x.Segment, x.Piece, x.Target, x.Kind))
	}
	sort.Strings(out)
	return out
}

// TestScrubBitRot: pieces altered through the S3 API with admin
// credentials, others deleted or truncated, across many files and
// segments, at most m per segment. Light finds exactly the missing and
// short ones without reading a single piece body (MinIO's own request
// counters, on the MinIO servers), deep finds exactly
// all of them, repair fixes all, a second deep scrub is clean, and every
// file fetches byte-identical.
func TestScrubBitRot(t *testing.T) {
	f := newScrubFixture(t, 5)
	ctx := testContext(t)
	targets := f.s.targets(t)
	ms := f.manifests(t)
	if len(ms) != 5 {
		t.Fatalf("%d manifests", len(ms))
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var want, wantLight []string
	pieces, empties, minioPieces := 0, 0, 0
	onMinio := map[string]bool{} // target ID -> on a MinIO server
	for _, n := range f.s.minioServers() {
		for _, tg := range targets[(n-1)*2 : n*2] {
			onMinio[tg.ID()] = true
		}
	}
	for _, name := range f.names() {
		m := ms[name]
		for i := range m.Segments {
			pieces += len(m.Segments[i].Pieces)
			for _, p := range m.Segments[i].Pieces {
				if onMinio[p.Target] {
					minioPieces++
				}
			}
			// 0, 1 or 2 bad pieces in each segment.
			for _, j := range rng.Perm(m.K + m.M)[:rng.IntN(m.M+1)] {
				p := m.Segments[i].Pieces[j]
				tg := targetByID(t, targets, p.Target)
				key := storage.PieceKey(f.ds, m.FileID, i, j)
				kind := []string{"hash", "missing", "size", "empty"}[rng.IntN(4)]
				switch kind {
				case "empty": // S3 refuses a ranged GET of it (416)
					if err := tg.Put(ctx, key, strings.NewReader(""), 0); err != nil {
						t.Fatal(err)
					}
					kind = "size"
					empties++
				case "hash":
					corruptObject(t, ctx, tg, key)
				case "missing":
					if err := tg.Delete(ctx, key); err != nil {
						t.Fatal(err)
					}
				case "size":
					truncateObject(t, ctx, tg, key)
				}
				k := fmt.Sprintf("%s/%d/%d/%s/%s", name, i, j, p.Target, kind)
				want = append(want, k)
				if kind != "hash" {
					wantLight = append(wantLight, k)
				}
			}
		}
	}
	sort.Strings(want)
	sort.Strings(wantLight)
	if len(want) < 10 || len(wantLight) == len(want) || len(wantLight) == 0 || empties == 0 {
		t.Fatalf("damage plan too thin: %d bad, %d light-visible", len(want), len(wantLight))
	}
	t.Logf("%d pieces, %d damaged (%d visible to a light scrub)", pieces, len(want), len(wantLight))

	before := f.s.minioRequests(t)
	light, code, _ := f.scrub(t, f.ds)
	after := f.s.minioRequests(t)
	if code != 0 || light.State != api.ScrubDone || light.Summary.Pieces != int64(pieces) {
		t.Fatalf("light scrub: exit %d, %+v", code, light.Summary)
	}
	if got := scrubKeys(light.Findings); !slices.Equal(got, wantLight) {
		t.Fatalf("light scrub found\n%v\nwant\n%v", got, wantLight)
	}
	if gets := after["GetObject"] - before["GetObject"]; gets != 0 {
		t.Fatalf("light scrub made %v GetObject requests", gets)
	}
	if heads := after["HeadObject"] - before["HeadObject"]; heads < float64(minioPieces) {
		t.Fatalf("light scrub made %v HeadObject requests for the %d pieces on MinIO: counters not live?", heads, minioPieces)
	}

	deep, code, _ := f.scrub(t, f.ds, "--deep")
	if got := scrubKeys(deep.Findings); code != 0 || !slices.Equal(got, want) {
		t.Fatalf("deep scrub (exit %d) found\n%v\nwant\n%v", code, got, want)
	}
	if deep.Summary.Pieces != int64(pieces) || deep.Summary.Unrecoverable != 0 {
		t.Fatalf("deep summary %+v", deep.Summary)
	}
	t.Logf("deep scrub: %d piece bytes in %.2fs (%.1f MiB/s)", deep.Summary.Bytes, deep.Summary.Seconds, deep.Summary.BytesPerSec/mib)

	rep, code, _ := f.scrub(t, f.ds, "--deep", "--repair")
	if code != 0 || rep.Summary.Repaired != len(want) || rep.Summary.Found != len(want) || rep.Summary.Deferred != 0 {
		t.Fatalf("repair: exit %d, %+v", code, rep.Summary)
	}
	for _, x := range rep.Findings {
		if x.Action != api.ActionRepaired || x.MovedTo != "" {
			t.Fatalf("repair finding %+v", x)
		}
	}
	again, code, _ := f.scrub(t, f.ds, "--deep")
	if code != 0 || again.Summary.Found != 0 || again.Summary.Pieces != int64(pieces) || again.Summary.Bytes != again.Summary.BytesTotal {
		t.Fatalf("after repair: exit %d, %v", code, scrubKeys(again.Findings))
	}
	f.fetchAll(t, f.names()...)

	// The human summary and the run list.
	out := f.admin.must(t, "scrub", "status", rep.ID)
	for _, w := range []string{"repaired", fmt.Sprint(len(want)), "throughput", "unrecoverable"} {
		if !strings.Contains(out, w) {
			t.Errorf("dozo scrub status output lacks %q:\n%s", w, out)
		}
	}
	if list := f.admin.must(t, "scrub", "status"); !strings.Contains(list, rep.ID) || !strings.Contains(list, again.ID) {
		t.Errorf("dozo scrub status does not list the runs:\n%s", list)
	}
	// Not for submitters.
	f.sam.refused(t, "scrub", f.ds)
}

// TestScrubUnrecoverable: three bad pieces (> m) in one segment. The run
// reports the segment and its pieces, writes nothing for it, marks only
// that file damaged, and dozo exits 3; the other files still fetch.
func TestScrubUnrecoverable(t *testing.T) {
	f := newScrubFixture(t, 3)
	ctx := testContext(t)
	targets := f.s.targets(t)
	ms := f.manifests(t)
	victim := f.names()[1]
	m := ms[victim]
	for _, j := range []int{1, 2, 4} {
		tg := targetByID(t, targets, m.Segments[2].Pieces[j].Target)
		key := storage.PieceKey(f.ds, m.FileID, 2, j)
		if j == 2 {
			corruptObject(t, ctx, tg, key)
		} else if err := tg.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	statesBefore := f.s.pieceStates(t, f.ds)
	r, code, errOut := f.scrub(t, f.ds, "--deep", "--repair")
	if code != 3 {
		t.Fatalf("exit status %d, want 3; stderr %s", code, errOut)
	}
	// A notice that the run started, then the error: one line.
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if last := lines[len(lines)-1]; len(lines) != 2 || !strings.HasPrefix(last, "dozo: scrub "+r.ID+": ") || !strings.Contains(last, "damaged") {
		t.Fatalf("stderr does not end in one clear error line: %q", errOut)
	}
	if len(r.Unrecoverable) != 1 || r.Unrecoverable[0].File != victim || r.Unrecoverable[0].Segment != 2 ||
		fmt.Sprint(r.Unrecoverable[0].Pieces) != "[1 2 4]" || r.Summary.DamagedFiles != 1 || r.Summary.Repaired != 0 {
		t.Fatalf("report: %+v %+v", r.Summary, r.Unrecoverable)
	}
	if after := f.s.pieceStates(t, f.ds); fmt.Sprint(after) != fmt.Sprint(statesBefore) {
		t.Fatal("a scrub of an unrecoverable segment changed stored pieces")
	}
	files := lsFiles(t, f.sam, f.ds)
	for _, n := range f.names() {
		want := api.FileAvailable
		if n == victim {
			want = api.FileDamaged
		}
		if files[n].State != want {
			t.Fatalf("%s is %s, want %s", n, files[n].State, want)
		}
	}
	f.sam.refused(t, "fetch", f.ds+"/"+victim, "-o", filepath.Join(f.dir, "x"))
	var others []string
	for _, n := range f.names() {
		if n != victim {
			others = append(others, n)
		}
	}
	f.fetchAll(t, others...)
	// status of the run keeps the exit status.
	if _, _, err := f.admin.dozo("scrub", "status", r.ID); err == nil {
		t.Fatal("dozo scrub status of an unrecoverable run exited 0")
	}
}

// TestScrubServerDown: one MinIO server is stopped while a deep scrub
// runs. The scrub completes, reports only unreachable pieces on that
// server (and a piece deleted meanwhile), damages nothing; files still
// fetch from parity. With the server back, a repair scrub restores full
// redundancy and a second deep scrub is clean.
func TestScrubServerDown(t *testing.T) {
	f := newScrubFixture(t, 4)
	ctx := testContext(t)
	targets := f.s.targets(t)
	ms := f.manifests(t)
	// A piece lost on a live server while server 3 is down.
	m := ms[f.names()[0]]
	var lost storage.PieceMeta
	lostPiece := -1
	for j, p := range m.Segments[1].Pieces {
		if !strings.HasPrefix(p.Target, "s3-") {
			lost, lostPiece = p, j
			break
		}
	}
	if err := targetByID(t, targets, lost.Target).Delete(ctx, storage.PieceKey(f.ds, m.FileID, 1, lostPiece)); err != nil {
		t.Fatal(err)
	}

	// Paced so the server stops mid-run.
	var started api.ScrubRun
	if err := json.Unmarshal([]byte(f.admin.must(t, "scrub", f.ds, "--deep", "--rate", "4MiB/s", "--detach", "--json")), &started); err != nil {
		t.Fatal(err)
	}
	restart := f.s.stopMinio(t, 3)
	r := f.waitScrub(t, started.ID)
	if r.State != api.ScrubDone || r.Summary.FilesDone != 4 || r.Summary.Unrecoverable != 0 || r.Summary.DamagedFiles != 0 {
		t.Fatalf("scrub with a server down: %+v", r.Summary)
	}
	sawLost := false
	for _, x := range r.Findings {
		switch {
		case x.Kind == api.FindingUnreachable && strings.HasPrefix(x.Target, "s3-"):
		case x.Kind == api.FindingMissing && x.File == f.names()[0] && x.Segment == 1 && x.Piece == lostPiece:
			sawLost = true
		default:
			t.Fatalf("unexpected finding %+v", x)
		}
	}
	if !sawLost || r.Summary.Unreachable == 0 {
		t.Fatalf("findings %v", scrubKeys(r.Findings))
	}
	for n, file := range lsFiles(t, f.sam, f.ds) {
		if file.State != api.FileAvailable {
			t.Fatalf("%s is %s after a scrub with a server down", n, file.State)
		}
	}
	// Degraded but intact: server 3 holds two pieces of every segment.
	// (The file with the lost piece has a segment with only k-1 reachable
	// pieces until the server is back; that is unavailability, not loss,
	// and the scrub did not mark it damaged.)
	f.fetchAll(t, f.names()[1])

	// A repair while the server is down rebuilds nothing it cannot place
	// (4+2 on six targets leaves no spare target in any segment) and
	// damages nothing: unreachable is not lost.
	down, code, _ := f.scrub(t, f.ds, "--repair")
	if code != 0 || down.Summary.Repaired != 0 || down.Summary.DamagedFiles != 0 || down.Summary.Deferred != down.Summary.Found || down.Summary.Found == 0 {
		t.Fatalf("repair with a server down: exit %d, %+v", code, down.Summary)
	}

	restart()
	f.waitMinio(t, targets)
	rep, code, _ := f.scrub(t, f.ds, "--deep", "--repair")
	if code != 0 || rep.Summary.Repaired != 1 || rep.Summary.Found != 1 || rep.Findings[0].Piece != lostPiece {
		t.Fatalf("repair with the server back: exit %d, %+v %v", code, rep.Summary, scrubKeys(rep.Findings))
	}
	again, _, _ := f.scrub(t, f.ds, "--deep")
	if again.Summary.Found != 0 || again.Summary.Pieces != again.Summary.PiecesTotal {
		t.Fatalf("after repair: %+v %v", again.Summary, scrubKeys(again.Findings))
	}
	f.fetchAll(t, f.names()...)
}

func (f *scrubFixture) waitScrub(t *testing.T, id string) api.ScrubRun {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var r api.ScrubRun
		out, errOut, err := f.admin.dozo("scrub", "status", id, "--json")
		if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
			t.Fatalf("dozo scrub status %s: %v %v %s", id, err, jerr, errOut)
		}
		if r.State != api.ScrubRunning {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("scrub %s still running", id)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitMinio waits until every target answers again.
func (f *scrubFixture) waitMinio(t *testing.T, targets []storage.Target) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, tg := range targets {
		for {
			err := tg.List(context.Background(), storage.DatasetPrefix(f.ds), func(storage.ObjectInfo) error { return io.EOF })
			if err == nil || errors.Is(err, io.EOF) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not answer: %v", tg.ID(), err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// truncateObject rewrites an object one byte short.
func truncateObject(t testing.TB, ctx context.Context, tg storage.Target, key string) {
	t.Helper()
	rc, err := tg.Get(ctx, key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Put(ctx, key, strings.NewReader(string(b[:len(b)-1])), int64(len(b)-1)); err != nil {
		t.Fatal(err)
	}
}

// minioRequests sums MinIO's own S3 request counters (metrics v3,
// api/requests) by API name over the MinIO servers. The bearer token is
// the JWT MinIO accepts for Prometheus scrapes: HS512 under the root
// secret key, issuer "prometheus".
func (s *stack) minioRequests(t *testing.T) map[string]float64 {
	t.Helper()
	enc := base64.RawURLEncoding
	hdr := enc.EncodeToString([]byte(`{"alg":"HS512","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "sub": s.accessKey, "accessKey": s.accessKey, "iss": "prometheus"})
	unsigned := hdr + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha512.New, []byte(s.secretKey))
	mac.Write([]byte(unsigned))
	token := unsigned + "." + enc.EncodeToString(mac.Sum(nil))
	out := map[string]float64{}
	for _, n := range s.minioServers() {
		ep := s.hostPort(n)
		req, _ := http.NewRequest(http.MethodGet, "http://"+ep+"/minio/metrics/v3/api/requests", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("minio metrics on %s: %s %s", ep, resp.Status, b)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "minio_api_requests_total{") {
				continue
			}
			i := strings.Index(line, `name="`)
			j := strings.LastIndexByte(line, ' ')
			if i < 0 || j < 0 {
				continue
			}
			name := line[i+6:]
			name = name[:strings.IndexByte(name, '"')]
			v, err := strconv.ParseFloat(line[j+1:], 64)
			if err == nil {
				out[name] += v
			}
		}
		resp.Body.Close()
	}
	return out
}

// TestScrubResumesAfterDozodRestart: dozod is killed in the middle of a
// paced scrub and started again; the run continues with the files it had
// not finished (those finished keep their record) and completes.
func TestScrubResumesAfterDozodRestart(t *testing.T) {
	f := newScrubFixture(t, 4)
	var started api.ScrubRun
	if err := json.Unmarshal([]byte(f.admin.must(t, "scrub", f.ds, "--deep", "--rate", "3MiB/s", "--detach", "--json")), &started); err != nil {
		t.Fatal(err)
	}
	db := f.s.catalogDB(t)
	doneAt := func() map[int]int64 { return db.scrubFilesDone(t, started.ID) }
	db.waitScrubFileDone(t, started.ID)
	restart := f.s.killDozod(t) // every dozod, wherever the scrub runs
	before := doneAt()
	if len(before) >= 4 {
		t.Skip("the scrub finished before dozod could be killed")
	}
	restart()
	r := f.waitScrub(t, started.ID)
	if r.State != api.ScrubDone || r.Summary.FilesDone != 4 || r.Summary.Found != 0 || r.Summary.Pieces != r.Summary.PiecesTotal {
		t.Fatalf("resumed run: %s %+v", r.State, r.Summary)
	}
	after := doneAt()
	for seq, at := range before {
		if after[seq] != at {
			t.Fatalf("file %d finished before the restart was scrubbed again", seq)
		}
	}
	t.Logf("%d of 4 files were done when dozod was killed", len(before))
}

// TestScrubRotOnMinioDisk: bytes flipped in pieces' files on a MinIO
// server's own disk, behind MinIO's back. MinIO's bitrot check then ends
// reads of those pieces with an error (a 503 before the body for an object
// kept inline in xl.meta, a body broken off for one in part.1) instead of
// returning wrong bytes. That is a finding about those pieces only: a deep
// scrub reports exactly them as bad, a repair rebuilds them in place on
// their own target, the target stays up for dozod and for the rest of the
// run, a second deep scrub is clean, and the file fetches byte-identical
// before and after.
func TestScrubRotOnMinioDisk(t *testing.T) {
	f := newScrubFixture(t, 1)
	ctx := testContext(t)
	targets := f.s.targets(t)
	name := f.names()[0]
	m := f.manifests(t)[name]
	onMinio := map[string]int{} // target ID -> MinIO server number
	for _, n := range f.s.minioServers() {
		for _, tg := range targets[(n-1)*2 : n*2] {
			onMinio[tg.ID()] = n
		}
	}
	// One piece of a full segment (256 KiB: MinIO keeps it in part.1) and
	// one of the short last segment (MinIO keeps it inline in xl.meta),
	// both on the same MinIO target.
	last := len(m.Segments) - 1
	var victim string
	var rot [][2]int // segment, piece
	for j, p := range m.Segments[last].Pieces {
		if onMinio[p.Target] == 0 {
			continue
		}
		for k, q := range m.Segments[0].Pieces {
			if q.Target == p.Target {
				victim, rot = p.Target, [][2]int{{0, k}, {last, j}}
				break
			}
		}
		if victim != "" {
			break
		}
	}
	if victim == "" {
		t.Fatal("no MinIO target holds a piece of both the first and the last segment")
	}
	tg := targetByID(t, targets, victim).(*storage.S3Target)
	dataDir := filepath.Join(f.s.dir, fmt.Sprintf("minio%d", onMinio[victim]), "data", tg.Bucket())
	var want []string
	for _, r := range rot {
		key := storage.PieceKey(f.ds, m.FileID, r[0], r[1])
		flipOnDisk(t, ctx, tg, filepath.Join(dataDir, filepath.FromSlash(key)), key)
		want = append(want, fmt.Sprintf("%s/%d/%d/%s/hash", name, r[0], r[1], victim))
	}
	sort.Strings(want)
	// MinIO refuses the rotten bytes rather than serve them.
	for _, r := range rot {
		key := storage.PieceKey(f.ds, m.FileID, r[0], r[1])
		rc, err := tg.Get(ctx, key, 0, -1)
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err == nil {
			t.Fatalf("MinIO served %s after its file was altered on disk", key)
		}
		t.Logf("MinIO on a rotten piece: %v", err)
	}
	f.fetchAll(t, name)

	deep, code, _ := f.scrub(t, f.ds, "--deep")
	if got := scrubKeys(deep.Findings); code != 0 || !slices.Equal(got, want) {
		t.Fatalf("deep scrub (exit %d) found\n%v\nwant\n%v", code, got, want)
	}
	if deep.Summary.Pieces != deep.Summary.PiecesTotal || deep.Summary.Unreachable != 0 {
		t.Fatalf("deep summary %+v", deep.Summary)
	}
	rep, code, _ := f.scrub(t, f.ds, "--deep", "--repair")
	if code != 0 || rep.Summary.Repaired != len(want) || rep.Summary.Found != len(want) || rep.Summary.Deferred != 0 {
		t.Fatalf("repair: exit %d, %+v %v", code, rep.Summary, scrubKeys(rep.Findings))
	}
	for _, x := range rep.Findings {
		if x.Action != api.ActionRepaired || x.MovedTo != "" {
			t.Fatalf("repair finding %+v: want rebuilt in place on %s", x, victim)
		}
	}
	var ts []struct {
		ID string
		Up bool
	}
	code, body := f.s.brokerGet(t, "/v1/targets", f.s.adminToken(t))
	if err := json.Unmarshal([]byte(body), &ts); code != http.StatusOK || err != nil || len(ts) != len(targets) {
		t.Fatalf("/v1/targets: %d %s", code, body)
	}
	for _, x := range ts {
		if !x.Up {
			t.Fatalf("target %s down after object-level read errors: %s", x.ID, body)
		}
	}
	again, code, _ := f.scrub(t, f.ds, "--deep")
	if code != 0 || again.Summary.Found != 0 || again.Summary.Pieces != again.Summary.PiecesTotal {
		t.Fatalf("after repair: exit %d, %+v %v", code, again.Summary, scrubKeys(again.Findings))
	}
	f.fetchAll(t, name)
}

// flipOnDisk inverts 16 bytes in the middle of the piece's data inside
// MinIO's files for key under dir: part.1 when MinIO keeps the object in
// parts, else the piece's bytes kept inline in xl.meta (found by content,
// so the metadata around them stays intact).
func flipOnDisk(t testing.TB, ctx context.Context, tg storage.Target, dir, key string) {
	t.Helper()
	rc, err := tg.Get(ctx, key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	piece, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || len(piece) < 64 {
		t.Fatalf("reading %s: %d bytes, %v", key, len(piece), err)
	}
	parts, _ := filepath.Glob(filepath.Join(dir, "*", "part.1"))
	var path string
	var off int
	switch len(parts) {
	case 1:
		path = parts[0]
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		off = int(st.Size() / 2)
	case 0:
		path = filepath.Join(dir, "xl.meta")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: no part.1 and %v (MinIO's layout changed?)", key, err)
		}
		i := strings.Index(string(b), string(piece))
		if i < 0 {
			t.Fatalf("%s: the piece is neither in a part.1 nor inline in xl.meta (MinIO's layout changed?)", key)
		}
		off = i + len(piece)/2
	default:
		t.Fatalf("%s: %d part.1 files", key, len(parts))
	}
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, 16)
	if _, err := fh.ReadAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := fh.WriteAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped 16 bytes at offset %d of %s", off, path)
}
