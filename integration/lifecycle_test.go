package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

type catalogFile struct {
	id       string
	header   []byte
	manifest []byte
}

// catalogFiles reads the catalog's header object and manifest of every
// available file of a dataset, by name.
func (s *stack) catalogFiles(t testing.TB, ds string) map[string]catalogFile {
	t.Helper()
	rows, err := s.catalogDB(t).Query(`SELECT name, id, header_object, manifest FROM files WHERE dataset_id = ? AND state = 'available'`, ds)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]catalogFile{}
	for rows.Next() {
		var name string
		var f catalogFile
		if err := rows.Scan(&name, &f.id, &f.header, &f.manifest); err != nil {
			t.Fatal(err)
		}
		out[name] = f
	}
	return out
}

// unwrapWithVault tries to open a stored header object with the dataset's
// Transit key, as anyone holding Vault's root token could.
func (s *stack) unwrapWithVault(t testing.TB, ds string, f catalogFile) error {
	t.Helper()
	key, _, err := crypto.OpenHeaderObject(f.header, crypto.NewTransitIdentity(testContext(t), s.vault(t), "dozo-ds-"+ds, f.id))
	clear(key)
	return err
}

// transitStanza returns the Transit ciphertext in a header object.
func transitStanza(t testing.TB, obj []byte) string {
	t.Helper()
	hdr, _, err := crypto.SplitHeaderObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	h, err := crypto.ParseHeader(hdr)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range h.Stanzas {
		if st.Type == crypto.TransitStanzaType {
			return string(st.Body)
		}
	}
	t.Fatal("no transit stanza")
	return ""
}

// payloadStates is pieceStates restricted to the given files' pieces.
func payloadStates(all map[string]string, files map[string]catalogFile) map[string]string {
	out := map[string]string{}
	for k, v := range all {
		for _, f := range files {
			if strings.Contains(k, "/"+f.id+"/") {
				out[k] = v
			}
		}
	}
	return out
}

// TestRotateKey: after `dozo dataset rotate-key`, old key versions open no
// header of the dataset, every file still fetches byte-identical, and no
// payload object changed. An interrupted rotation (a storage server down)
// resumes without rotating again, and an upload running during the
// rotation ends up under the new version.
func TestRotateKey(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	ds := newDatasetID()
	key := "dozo-ds-" + ds
	sam.must(t, "dataset", "create", ds, "--title", "rotation test", "--segment-size", "1MiB")
	dir := t.TempDir()
	want := map[string]string{}
	for i, size := range []int64{3*mib + 77, 1000} {
		p := filepath.Join(dir, fmt.Sprintf("f%d.bam", i))
		want[filepath.Base(p)] = writeRandomFile(t, p, uint64(30+i), size, nil)
		sam.must(t, "upload", "--dataset", ds, p)
	}
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().AddDate(0, 0, 7).Format(time.DateOnly), "--application", "J-DU000001", "--institution", "NIG")
	old := s.catalogFiles(t, ds)
	if len(old) != 2 {
		t.Fatalf("%d files stored", len(old))
	}
	for name, f := range old {
		if err := s.unwrapWithVault(t, ds, f); err != nil {
			t.Fatalf("%s: the header does not open before rotation: %v", name, err)
		}
	}
	before := payloadStates(s.pieceStates(t, ds), old)
	if len(before) != 5*6 {
		t.Fatalf("%d payload objects before rotation", len(before))
	}

	// A large upload runs while the key rotates.
	big := filepath.Join(dir, "big.cram")
	want["big.cram"] = writeRandomFile(t, big, 39, 40*mib, nil)
	up := sam.command("upload", "--dataset", ds, big)
	var upErr bytes.Buffer
	up.Stderr = &upErr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); len(s.pieceStates(t, ds)) < len(before)+2*6 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}

	var r api.RotateKeyResponse
	if err := json.Unmarshal([]byte(sam.must(t, "dataset", "rotate-key", ds, "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if err := up.Wait(); err != nil {
		t.Fatalf("upload during rotation: %v: %s", err, upErr.String())
	}
	t.Logf("first rotation: %d files (3 when the large upload had begun), %d rewrapped", r.Files, r.Rewrapped)
	if r.FromVersion != 1 || r.ToVersion != 2 || r.Resumed || r.Rewrapped < 2 || len(r.AbortedUploads) != 0 {
		t.Fatalf("rotation: %+v", r)
	}
	ki, err := s.vault(t).ReadKey(testContext(t), key)
	if err != nil || ki.MinDecryptionVersion != 2 || ki.LatestVersion != 2 {
		t.Fatalf("key after rotation: %+v %v", ki, err)
	}
	check := func(old map[string]catalogFile, version int) {
		t.Helper()
		for name, f := range old {
			if err := s.unwrapWithVault(t, ds, f); err == nil {
				t.Errorf("%s: a header kept from before the rotation still opens", name)
			}
		}
		now := s.catalogFiles(t, ds)
		if len(now) != 3 {
			t.Fatalf("%d files after rotation", len(now))
		}
		for name, f := range now {
			if err := s.unwrapWithVault(t, ds, f); err != nil {
				t.Errorf("%s: the rewrapped header does not open: %v", name, err)
			}
			if v := transitStanza(t, f.header); !strings.HasPrefix(v, fmt.Sprintf("vault:v%d:", version)) || !bytes.Contains(f.manifest, fmt.Appendf(nil, `"mac":"vault:v%d:`, version)) {
				t.Errorf("%s: header or manifest not under key version %d", name, version)
			}
			// The copies beside the pieces (one per failure domain) are
			// the catalog's.
			copies := 0
			for _, tg := range s.targets(t) {
				rc, err := tg.Get(context.Background(), storage.HeaderKey(ds, f.id), 0, -1)
				if err != nil {
					continue
				}
				var b bytes.Buffer
				b.ReadFrom(rc)
				rc.Close()
				if !bytes.Equal(b.Bytes(), f.header) {
					t.Errorf("%s: header.age on %s differs from the catalog", name, tg.ID())
				}
				copies++
			}
			if copies != 3 {
				t.Errorf("%s: %d header copies on storage, want 3", name, copies)
			}
		}
		after := payloadStates(s.pieceStates(t, ds), old)
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Error("rotation changed payload objects (ETag or modification time)")
		}
		for name, sha := range want {
			out := filepath.Join(t.TempDir(), name)
			rita.must(t, "fetch", ds+"/"+name, "-o", out)
			if fileSHA(t, out) != sha {
				t.Errorf("%s fetches different bytes after rotation", name)
			}
		}
	}
	check(old, 2)

	// Interrupted: server 1 holds a metadata copy of every file, so the
	// rotation stops at the first file; the rerun resumes the same target
	// version instead of rotating again.
	old2 := s.catalogFiles(t, ds)
	before = payloadStates(s.pieceStates(t, ds), old2)
	restart := s.stopMinio(t, 1)
	line := sam.refused(t, "dataset", "rotate-key", ds)
	if !strings.Contains(line, "interrupted") || !strings.Contains(line, "again") {
		t.Errorf("interrupted rotation: %s", line)
	}
	restart()
	if err := json.Unmarshal([]byte(sam.must(t, "dataset", "rotate-key", ds, "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Resumed || r.ToVersion != 3 || r.Rewrapped != 3 {
		t.Fatalf("resumed rotation: %+v", r)
	}
	if ki, _ := s.vault(t).ReadKey(testContext(t), key); ki.LatestVersion != 3 || ki.MinDecryptionVersion != 3 {
		t.Fatalf("key after resume: %+v (a resume must not rotate again)", ki)
	}
	check(old2, 3)
	for name, f := range old { // still dead
		if s.unwrapWithVault(t, ds, f) == nil {
			t.Errorf("%s: a version-1 header opens again", name)
		}
	}

	// Only the custodian (or an admin) rotates.
	rita.refused(t, "dataset", "rotate-key", ds)
	sam.refused(t, "dataset", "rotate-key", "JGAD000000000")
}

// enableVersioning turns on S3 versioning for server n's buckets for the
// rest of the test (suspended afterwards: S3 cannot switch it off).
func (s *stack) enableVersioning(t testing.TB, n int) {
	t.Helper()
	ctx := context.Background()
	for _, tg := range s.targets(t) {
		st := tg.(*storage.S3Target)
		if st.Domain() != fmt.Sprintf("server%d", n) {
			continue
		}
		if err := st.Client().EnableVersioning(ctx, st.Bucket()); err != nil {
			t.Fatalf("enabling versioning on %s: %v", st.ID(), err)
		}
		t.Cleanup(func() { st.Client().SuspendVersioning(ctx, st.Bucket()) })
	}
}

// allVersions lists every object version and delete marker under the
// dataset's prefix in every bucket, with the admin S3 credentials.
func (s *stack) allVersions(t testing.TB, ds string) []string {
	t.Helper()
	var out []string
	for _, tg := range s.targets(t) {
		st := tg.(*storage.S3Target)
		for oi := range st.Client().ListObjects(context.Background(), st.Bucket(), minio.ListObjectsOptions{Prefix: storage.DatasetPrefix(ds), Recursive: true, WithVersions: true}) {
			if oi.Err != nil {
				t.Fatalf("listing %s: %v", st.ID(), oi.Err)
			}
			out = append(out, st.ID()+"/"+oi.Key+"@"+oi.VersionID)
		}
	}
	return out
}

// TestDeleteDataset: `dozo dataset delete`, once its grace period is
// over, removes every object version of the dataset on every target, and
// only then destroys the key; an old header and its pieces kept aside no
// longer decrypt; the report lists every deleted object. An interrupted
// deletion (a server down) keeps the key and resumes.
func TestDeleteDataset(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	admin := s.admin(t)
	s.enableVersioning(t, 3)
	ds := newDatasetID()
	key := "dozo-ds-" + ds
	sam.must(t, "dataset", "create", ds, "--title", "deletion test", "--segment-size", "1MiB")
	dir := t.TempDir()
	for i, size := range []int64{2*mib + 3, 4321} {
		p := filepath.Join(dir, fmt.Sprintf("s%d.vcf", i))
		writeRandomFile(t, p, uint64(40+i), size, nil)
		sam.must(t, "upload", "--dataset", ds, p)
	}
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().AddDate(0, 0, 7).Format(time.DateOnly), "--application", "J-DU000001", "--institution", "NIG")
	// A rotation rewrites header.age and manifest.json: on server 3 the
	// old versions stay behind as noncurrent versions, which the deletion
	// must remove too.
	sam.must(t, "dataset", "rotate-key", ds)
	kept := s.catalogFiles(t, ds)
	pieces := map[string][]byte{} // the old pieces, kept aside
	for _, tg := range s.targets(t) {
		tg.List(context.Background(), storage.DatasetPrefix(ds), func(oi storage.ObjectInfo) error {
			rc, err := tg.Get(context.Background(), oi.Key, 0, -1)
			if err != nil {
				return err
			}
			var b bytes.Buffer
			b.ReadFrom(rc)
			rc.Close()
			pieces[tg.ID()+"/"+oi.Key] = b.Bytes()
			return nil
		})
	}
	for name, f := range kept {
		if err := s.unwrapWithVault(t, ds, f); err != nil {
			t.Fatalf("%s: kept header does not open before deletion: %v", name, err)
		}
	}
	versions := s.allVersions(t, ds)
	noncurrent := len(versions) - len(pieces)
	if noncurrent < 2*2 { // header.age + manifest.json of two files on server 3
		t.Fatalf("%d versions for %d current objects: versioning not in effect", len(versions), len(pieces))
	}

	// Refusals change nothing.
	rita.refused(t, "dataset", "delete", ds, "--confirm", ds)
	sam.refused(t, "dataset", "delete", ds, "--confirm", ds+"x")
	sam.refused(t, "dataset", "delete", ds)
	if got := s.allVersions(t, ds); len(got) != len(versions) {
		t.Fatalf("a refused deletion removed objects: %d -> %d", len(versions), len(got))
	}

	// Scheduled: the dataset is gone for users at once. Run with server 2
	// down: the key stays until every object is gone.
	sam.must(t, "dataset", "delete", ds, "--confirm", ds)
	restart := s.stopMinio(t, 2)
	_, line := deleteWhenDue(t, sam, ds, "--report", filepath.Join(dir, "rep"))
	if !strings.Contains(line, "not destroyed") || !strings.Contains(line, "again") {
		t.Errorf("interrupted deletion: %s", line)
	}
	if _, err := s.vault(t).ReadKey(testContext(t), key); err != nil {
		t.Fatalf("the key was destroyed while objects remained: %v", err)
	}
	rita.refused(t, "fetch", ds+"/s0.vcf", "-o", filepath.Join(dir, "x"))
	sam.refused(t, "dataset", "show", ds)
	restart()

	st, line := deleteWhenDue(t, sam, ds, "--report", filepath.Join(dir, "rep"))
	if st == nil {
		t.Fatalf("deletion after the outage: %s", line)
	}
	rep := *st.Report
	// Nothing of the dataset is left anywhere, in any version.
	if left := s.allVersions(t, ds); len(left) != 0 {
		t.Fatalf("after deletion %d object versions remain: %v", len(left), left)
	}
	// The report lists every object version that existed.
	listed := map[string]bool{}
	for _, o := range rep.Objects {
		listed[o.Target+"/"+o.Key+"@"+o.VersionID] = true
	}
	for _, v := range versions {
		if !listed[v] {
			t.Errorf("report misses %s", v)
		}
	}
	if rep.Status != "complete" || rep.StartedBy != sam.name || rep.Key.Name != key || rep.Key.Versions != 2 || rep.Key.DestroyedAt.IsZero() ||
		len(rep.Files) != 2 || len(rep.Targets) != 6 || !strings.Contains(rep.Statement, "destroyed") {
		t.Errorf("report: %+v", rep)
	}
	for _, f := range rep.Files {
		if f.SHA256 == "" || f.Size == 0 || f.ID == "" {
			t.Errorf("report file entry %+v", f)
		}
	}
	txt, err := os.ReadFile(filepath.Join(dir, "rep.txt"))
	if err != nil || !strings.Contains(string(txt), "s0.vcf") || !strings.Contains(string(txt), key) || !strings.Contains(string(txt), "destroyed") {
		t.Errorf("text report: %v\n%s", err, txt)
	}
	if _, err := os.Stat(filepath.Join(dir, "rep.json")); err != nil {
		t.Error(err)
	}

	// The key is gone, so the header and pieces kept aside are useless.
	if _, err := s.vault(t).ReadKey(testContext(t), key); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("key still in Vault: %v", err)
	}
	for name, f := range kept {
		if err := s.unwrapWithVault(t, ds, f); err == nil {
			t.Errorf("%s: kept header still opens after deletion", name)
		}
	}
	if len(pieces) < 2*6 {
		t.Fatalf("only %d objects kept aside", len(pieces))
	}

	// The dataset answers 404 to everyone; its report and audit remain.
	rita.refused(t, "fetch", ds+"/s0.vcf", "-o", filepath.Join(dir, "x"))
	sam.refused(t, "ls", ds)
	sam.refused(t, "upload", "--dataset", ds, filepath.Join(dir, "s1.vcf"))
	sam.refused(t, "dataset", "rotate-key", ds)
	rita.refused(t, "dataset", "deletion-report", ds)
	var again api.DeletionReport
	if err := json.Unmarshal([]byte(admin.must(t, "dataset", "deletion-report", ds, "--report", filepath.Join(dir, "again"), "--json")), &again); err != nil {
		t.Fatal(err)
	}
	if len(again.Objects) != len(rep.Objects) || !again.FinishedAt.Equal(rep.FinishedAt) {
		t.Errorf("stored report differs: %d vs %d objects", len(again.Objects), len(rep.Objects))
	}
	// The id is never reused, and trying does not bring a key back.
	sam.refused(t, "dataset", "create", ds, "--title", "again")
	if _, err := s.vault(t).ReadKey(testContext(t), key); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("re-creating a deleted dataset made a key: %v", err)
	}
	// Deleting again is harmless and changes nothing.
	sam.must(t, "dataset", "delete", ds, "--confirm", ds, "--report", filepath.Join(dir, "rep2"))
	var done bool
	for _, r := range auditList(t, admin, "--dataset", ds) {
		done = done || (r.Action == "dataset.delete.done" && r.Actor == sam.name)
	}
	if !done {
		t.Error("no dataset.delete.done record in the audit")
	}
	admin.must(t, "audit", "verify")
}
