package broker

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/storage"
)

// fetch returns a file's facts, the head of its manifest and its header
// rewrapped for the caller's registered recipient. The file key is unwrapped by Transit
// inside this call and exists here only long enough to be wrapped again.
func (s *Server) fetch(q *request) error {
	dsID, name := q.r.PathValue("ds"), q.r.PathValue("name")
	q.object = "dataset/" + dsID + "/file/" + name
	// An optional body asks for the first presign batch with the answer.
	var batch *api.FetchBatchRequest
	if err := q.optionalBody(&batch); err != nil {
		return err
	}
	if batch != nil && *batch == (api.FetchBatchRequest{}) {
		batch = nil // {}: no options, as before the body was read
	}
	if ValidateName(name) != nil {
		return notFoundFile(dsID, name)
	}
	// The caller's freeze, the dataset with the caller's roles and its
	// freeze, the file and the caller's recipient, in one read.
	c, err := s.checks(q, catalog.AccessQuery{Dataset: dsID, FileName: name, Recipient: true})
	if err != nil {
		return err
	}
	if len(c.Datasets) == 0 {
		// No such file, or no such dataset: the dataset's own check
		// gives the answer a caller who may not read it gets.
		if _, err := s.readAccess(q, dsID, notFoundFile(dsID, name)); err != nil { // access.go: grant, freezes
			return err
		}
		return notFoundFile(dsID, name)
	}
	if err := callerFrozen(q, c); err != nil {
		return err
	}
	a, err := s.readRule(q, dsID, s.accessOf(q, &c.Datasets[0]), notFoundFile(dsID, name)) // access.go: grant, freezes
	if err != nil {
		return err
	}
	f := c.Datasets[0].File
	q.object, q.dataset = "file/"+f.ID, f.DatasetID
	rcpt := c.Recipient
	if rcpt == "" {
		return &httpError{status: http.StatusConflict, msg: "you have no registered age recipient to wrap the file key for",
			hint: "run `dozo keygen && dozo key register`, then fetch again"}
	}
	r, err := ParseRecipient(rcpt)
	if err != nil {
		return internal("parsing the registered recipient", err)
	}
	v, err := s.verifiedManifest(q, f, a.ds)
	if err != nil {
		return err
	}
	hdr, err := crypto.RewrapHeaderObject(f.HeaderObject, crypto.NewTransitIdentity(q.ctx, s.keys, a.ds.TransitKey, f.ID), r)
	if err != nil {
		return internal("rewrapping the header", err)
	}
	// The head only: the entries come with the presign batches, so this
	// answer is the same size for a 1 MiB file and a 200 GB one.
	out := api.FetchResponse{
		File: apiFile(f), Manifest: v.m.Head(), HeaderObject: base64.StdEncoding.EncodeToString(hdr), Targets: v.targets,
	}
	if batch != nil {
		if out.Batch, err = s.firstBatch(q, v.m, *batch); err != nil {
			return err
		}
	}
	return q.reply(http.StatusOK, out)
}

// firstBatch is the presign batch a fetch asked for with it: the batch
// route's answer for req with its Count cut by api.FoldedCount, whose
// rule (RuleReadData) the fetch's own checks have just applied. The audit
// record's detail says which URLs were made.
func (s *Server) firstBatch(q *request, m *storage.Manifest, req api.FetchBatchRequest) (*api.FetchBatchResponse, error) {
	lo, hi := batchPieces(m, req.Parity)
	if req.Count > 0 {
		req.Count = max(1, api.FoldedCount(req.Count, req.First, m.SegmentCount(), hi-lo))
	}
	kind := "data"
	if req.Parity {
		kind = "parity"
	}
	q.detail = fmt.Sprintf("with GET URLs of the %s pieces of segments %d..%d", kind, req.First, req.First+req.Count-1)
	return s.fetchBatch(q, m, req)
}

// verifiedManifest returns file f's manifest once its MAC verified under
// the key of its dataset ds and it names f: the catalog is not trusted
// blindly. A manifest verified before, byte for byte the same under the
// same key and key generation, is not parsed or verified again (see
// manifestCache).
func (s *Server) verifiedManifest(q *request, f *catalog.File, ds *catalog.Dataset) (*verifiedManifest, error) {
	transitKey, gen := ds.TransitKey, ds.KeyGeneration
	newest := s.macMemo.observe(transitKey, gen)
	if v := s.manifests.get(f.ID, transitKey, gen, f.Manifest); v != nil && newest {
		return v, nil
	}
	m, err := storage.ParseManifest(f.Manifest)
	if err != nil {
		return nil, internal("parsing the manifest", err)
	}
	if err := m.Verify(q.ctx, s.manifestAuth(transitKey)); err != nil || m.DatasetID != f.DatasetID || m.FileID != f.ID {
		return nil, internal("verifying the manifest", errors.Join(err, errors.New("manifest does not verify or names another file")))
	}
	v := &verifiedManifest{fileID: f.ID, key: transitKey, gen: gen, raw: bytes.Clone(f.Manifest), m: m, targets: s.manifestTargets(m)}
	if newest {
		s.manifests.add(v)
	}
	return v, nil
}

// verifiedManifest is a manifest whose MAC verified, with the bytes it was
// parsed from and the dataset key and key generation it verified under.
type verifiedManifest struct {
	fileID, key string
	gen         int64
	raw         []byte
	m           *storage.Manifest
	targets     []api.Target
}

// manifestCacheBytes bounds the encoded manifests the cache holds.
const manifestCacheBytes = 64 << 20

// manifestCache remembers verified manifests, so the fetch call and every
// presign batch of a large file do not parse and verify megabytes of
// manifest again. A hit needs the catalog's bytes to equal the verified
// ones exactly, so a manifest changed by any dozod sharing the catalog (a
// scrub repair, a rotation's new MAC) is verified afresh. A hit also needs
// the same key generation, read with the dataset: once a rotation by any
// dozod has retired the old key versions, bytes verified before it are
// verified again, as Vault would now refuse their MAC. Key rotation also
// resets the cache of the dozod that runs it. Safe for concurrent use.
type manifestCache struct {
	mu    sync.Mutex
	byID  map[string]*verifiedManifest
	fifo  []string
	bytes int
}

func (c *manifestCache) get(fileID, key string, gen int64, raw []byte) *verifiedManifest {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.byID[fileID]
	if v == nil || v.key != key || v.gen != gen || !bytes.Equal(v.raw, raw) {
		return nil
	}
	return v
}

func (c *manifestCache) add(v *verifiedManifest) {
	if len(v.raw) > manifestCacheBytes/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil {
		c.byID = map[string]*verifiedManifest{}
	}
	if old := c.byID[v.fileID]; old != nil {
		c.bytes -= len(old.raw)
	} else {
		c.fifo = append(c.fifo, v.fileID)
	}
	c.byID[v.fileID] = v
	c.bytes += len(v.raw)
	for c.bytes > manifestCacheBytes && len(c.fifo) > 0 {
		id := c.fifo[0]
		c.fifo = c.fifo[1:]
		if old := c.byID[id]; old != nil {
			c.bytes -= len(old.raw)
			delete(c.byID, id)
		}
	}
}

// reset forgets every verified manifest.
func (c *manifestCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID, c.fifo, c.bytes = nil, nil, 0
}

// manifestTargets lists the targets a manifest uses, as configured now.
func (s *Server) manifestTargets(m *storage.Manifest) []api.Target {
	seen := map[string]bool{}
	out := []api.Target{}
	for _, seg := range m.Segments {
		for _, p := range seg.Pieces {
			if seen[p.Target] {
				continue
			}
			seen[p.Target] = true
			t := api.Target{ID: p.Target}
			if ct, ok := s.targets[p.Target]; ok {
				t.Domain = ct.Domain()
			}
			out = append(out, t)
		}
	}
	return out
}

// presignGet presigns a GET for one piece of an available file. Access is
// checked on every call, so a revoked or expired grant stops a download
// within one presign lifetime.
func (s *Server) presignGet(q *request) error {
	id := q.r.PathValue("file")
	q.object = "file/" + id
	var req api.PresignRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	f, a, err := s.openFetch(q, id)
	if err != nil {
		return err
	}
	t, size, err := s.checkGetPiece(q, f, a, req)
	if err != nil {
		return err
	}
	q.object = "file/" + id + "/" + req.Key
	url, err := t.PresignGet(q.ctx, req.Key, s.presign)
	if err != nil {
		return internal("presigning", err)
	}
	s.countPresign(http.MethodGet, size)
	return q.reply(http.StatusOK, api.PresignResponse{URL: url.String(), Method: http.MethodGet, ExpiresAt: s.now().Add(s.presign)})
}

// openFetch returns file id if the caller may read it now: available, and
// the read rule of its dataset (readAccess: grant, roles, freezes) allows
// it. A missing file and a stranger get the same 404.
func (s *Server) openFetch(q *request, id string) (*catalog.File, *dsAccess, error) {
	notFound := errorf(http.StatusNotFound, "file %q not found", id)
	if storage.ValidateID(id) != nil {
		return nil, nil, notFound
	}
	// The file, its dataset with the caller's roles and its freeze, and
	// the caller's freeze, in one read.
	v, err := s.checks(q, catalog.AccessQuery{FileID: id})
	if err != nil {
		return nil, nil, err
	}
	if len(v.Datasets) == 0 {
		// No such file, or its dataset is deleted.
		return s.openFetchApart(q, id, notFound)
	}
	f := v.Datasets[0].File
	q.dataset = f.DatasetID // the object is "file/<id>"
	if err := callerFrozen(q, v); err != nil {
		return nil, nil, err
	}
	a, err := s.readRule(q, f.DatasetID, s.accessOf(q, &v.Datasets[0]), notFound) // access.go
	if err != nil {
		return nil, nil, err
	}
	if f.State != catalog.FileAvailable {
		return nil, nil, notFound
	}
	return f, a, nil
}

// openFetchApart is openFetch with the file and the access check read
// one after the other: the answers for a file that is not there, or whose
// dataset is deleted.
func (s *Server) openFetchApart(q *request, id string, notFound *httpError) (*catalog.File, *dsAccess, error) {
	f, err := s.cat.File(q.ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, nil, notFound
	}
	if err != nil {
		return nil, nil, internal("reading the file", err)
	}
	q.dataset = f.DatasetID                          // the object is "file/<id>"
	a, err := s.readAccess(q, f.DatasetID, notFound) // access.go
	if err != nil {
		return nil, nil, err
	}
	if f.State != catalog.FileAvailable {
		return nil, nil, notFound
	}
	return f, a, nil
}

// checkGetPiece returns the target a GET of req's piece may be presigned
// on, and the piece's size: the key must name a piece of file f, stored on
// req.Target according to the catalog (also used by the batch presign).
func (s *Server) checkGetPiece(q *request, f *catalog.File, a *dsAccess, req api.PresignRequest) (Target, int64, error) {
	segments := int((f.StoredSize + a.ds.SegmentSize - 1) / a.ds.SegmentSize)
	seg, piece, err := ParsePieceKey(req.Key, f.DatasetID, f.ID, segments, a.ds.K+a.ds.M)
	if err != nil {
		return nil, 0, badRequest("%v", err)
	}
	meta, err := s.cat.Segment(q.ctx, f.ID, seg)
	if err != nil {
		return nil, 0, internal("reading the segment", err)
	}
	if piece >= len(meta.Pieces) || meta.Pieces[piece].Target != req.Target {
		return nil, 0, badRequest("piece %d of segment %d is not on target %q", piece, seg, req.Target)
	}
	t, err := s.target(req.Target)
	return t, meta.PieceSize, err
}
