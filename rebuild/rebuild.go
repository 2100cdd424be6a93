// Package rebuild restores a dataset's catalog rows from what storage
// holds: the signed manifests, the headers beside them and the sealed file
// info. It trusts nothing it has not verified with the dataset's key
// service, and writes nothing unless asked to.
//
// The package depends on the catalog calls it makes (Catalog), the storage
// targets and the key service's unwrap and MAC calls (Keys), never on the
// HTTP layer; it returns plain errors.
package rebuild

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// Catalog is the catalog a rebuild reads and restores rows into;
// *catalog.Catalog implements it.
type Catalog interface {
	Dataset(ctx context.Context, id string) (*catalog.Dataset, error)
	File(ctx context.Context, id string) (*catalog.File, error)
	CreateDataset(ctx context.Context, d catalog.Dataset) error
	SetDatasetTitle(ctx context.Context, id, title string) error
	RestoreFile(ctx context.Context, f catalog.File, segs []storage.SegmentMeta, now time.Time) error
}

// Keys is the part of the key service a rebuild uses: unwrapping headers
// and verifying manifest MACs under the dataset's Transit key, and reading
// the key's versions (a recreated row's key generation).
type Keys interface {
	crypto.KeyWrapper
	vault.MACKeys
	ReadKey(ctx context.Context, name string) (*vault.KeyInfo, error)
}

// Options describe one catalog rebuild of a dataset from storage.
type Options struct {
	Catalog   Catalog
	Keys      Keys
	Targets   []storage.Target
	DatasetID string
	// TransitKey is the dataset's key; "" for the catalog row's, else the
	// name a dataset is created with (api.TransitKeyName).
	TransitKey string
	// Owner becomes custodian and submitter of a dataset row that has to
	// be recreated; required then.
	Owner string
	// Title of a recreated dataset row; "" for the title stored with the
	// files, else a note that it was rebuilt.
	Title string
	Apply bool // false: report what would change, change nothing
	Now   time.Time
}

// Report says what a rebuild found and did.
type Report struct {
	Dataset        string            `json:"dataset"`
	TransitKey     string            `json:"transit_key"`
	Applied        bool              `json:"applied"`
	DatasetRow     string            `json:"dataset_row"` // "exists", "created", "would be created"
	Layout         string            `json:"layout,omitempty"`
	Manifests      int               `json:"manifests_found"`
	Files          []File            `json:"files"`
	Skipped        []Skip            `json:"skipped"`
	TargetsMissing map[string]string `json:"targets_unlisted,omitempty"`
}

// File is one file found on storage.
type File struct {
	FileID string `json:"file_id"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	// Action is "restored", "would restore" or "already in the catalog".
	Action string `json:"action"`
	// NameFromID: storage held no readable file info (files uploaded
	// before dozo stored it), so the file is named by its id and has no
	// checksums; rename it if needed.
	NameFromID bool   `json:"name_from_id,omitempty"`
	Note       string `json:"note,omitempty"`
}

// Skip is a file on storage that was not restored, and why.
type Skip struct {
	FileID string `json:"file_id"`
	Reason string `json:"reason"`
}

// Run restores the catalog rows of a dataset's files from the
// manifests, headers and sealed file info stored on the targets.
//
// Nothing from storage is trusted unverified: a manifest is used only if
// its MAC verifies under the dataset's Transit key and it names this
// dataset and file; the header beside it only if Transit opens it for that
// file id (which also checks the header's MAC); the file info only if it
// opens under that header's file key. Anything else is skipped and
// reported. A Vault outage stops the rebuild (fail closed) instead of
// being reported as bad files. Files already in the catalog are left
// alone. Without Apply nothing is written.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := api.ValidateDatasetID(o.DatasetID); err != nil {
		return nil, err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	rep := &Report{Dataset: o.DatasetID, Applied: o.Apply, Files: []File{}, Skipped: []Skip{}}
	ds, err := o.Catalog.Dataset(ctx, o.DatasetID)
	switch {
	case err == nil:
		rep.DatasetRow = "exists"
		if o.TransitKey != "" && o.TransitKey != ds.TransitKey {
			return nil, fmt.Errorf("dataset %s exists with transit key %q, not %q", ds.ID, ds.TransitKey, o.TransitKey)
		}
		o.TransitKey = ds.TransitKey
	case errors.Is(err, catalog.ErrNotFound):
		ds = nil
		if o.TransitKey == "" {
			o.TransitKey = api.TransitKeyName(o.DatasetID)
		}
		if o.Owner == "" {
			return nil, fmt.Errorf("dataset %s is not in the catalog: pass --owner USER (made custodian and submitter of the recreated dataset)", o.DatasetID)
		}
		if err := vault.ValidUsername(o.Owner); err != nil {
			return nil, fmt.Errorf("--owner: %w", err)
		}
	default:
		return nil, err
	}
	rep.TransitKey = o.TransitKey
	if err := vault.ValidKeyName(o.TransitKey); err != nil {
		return nil, fmt.Errorf("transit key: %w", err)
	}
	byID := map[string]storage.Target{}
	for _, t := range o.Targets {
		byID[t.ID()] = t
	}

	found, listErrs := filestore.ListManifests(ctx, o.Targets, o.DatasetID)
	if len(listErrs) > 0 {
		rep.TargetsMissing = map[string]string{}
		for id, err := range listErrs {
			rep.TargetsMissing[id] = err.Error()
		}
		if len(listErrs) == len(o.Targets) {
			return nil, fmt.Errorf("no storage target could be listed: %v", errors.Join(mapValues(listErrs)...))
		}
	}
	rep.Manifests = len(found)
	ids := make([]string, 0, len(found))
	for id := range found {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	// No memo: every manifest is verified by Transit itself.
	auth := vault.TransitHMAC{Keys: o.Keys, Key: o.TransitKey}
	for _, id := range ids {
		rf, skip, err := rebuildOne(ctx, o, auth, byID, found[id], id, &ds, rep)
		if err != nil {
			return nil, err
		}
		if skip != "" {
			rep.Skipped = append(rep.Skipped, Skip{FileID: id, Reason: skip})
			continue
		}
		rep.Files = append(rep.Files, *rf)
	}
	if rep.DatasetRow == "" {
		rep.DatasetRow = "not needed (no file could be restored)"
	}
	return rep, nil
}

func mapValues(m map[string]error) []error {
	var out []error
	for _, e := range m {
		out = append(out, e)
	}
	return out
}

// defaultTitle names a recreated dataset until a file's stored info
// gives its real title.
const defaultTitle = "rebuilt from storage by dozod catalog rebuild"

// recovered is one file's verified metadata from one target.
type recovered struct {
	m       *storage.Manifest
	mb      []byte
	hdr     []byte
	fileKey []byte
	src     storage.Target
}

// rebuildOne verifies one file's metadata and restores it. It returns a
// skip reason for a file that cannot be restored, and an error only when
// the rebuild must stop (Vault or the catalog failing).
func rebuildOne(ctx context.Context, o Options, auth storage.Authenticator, byID map[string]storage.Target, holders []string,
	id string, ds **catalog.Dataset, rep *Report) (*File, string, error) {
	if f, err := o.Catalog.File(ctx, id); err == nil {
		if f.DatasetID != o.DatasetID {
			return nil, fmt.Sprintf("file id already in the catalog under dataset %s", f.DatasetID), nil
		}
		return &File{FileID: id, Name: f.Name, Size: f.Size, Action: "already in the catalog"}, "", nil
	} else if !errors.Is(err, catalog.ErrNotFound) {
		return nil, "", err
	}
	var rec *recovered
	var problems []string
	for _, tid := range holders {
		r, err := readVerified(ctx, o, auth, byID[tid], id)
		if errors.Is(err, vault.ErrUnavailable) {
			return nil, "", fmt.Errorf("vault unavailable while verifying %s: %w", id, err)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", tid, err))
			continue
		}
		rec = r
		break
	}
	if rec == nil {
		return nil, fmt.Sprintf("no copy verifies (%s)", joinProblems(problems)), nil
	}
	defer clear(rec.fileKey)
	m := rec.m
	l := m.Layout()
	if *ds != nil && (m.K != (*ds).K || m.M != (*ds).M || m.SegmentSize != (*ds).SegmentSize) {
		return nil, fmt.Sprintf("layout %s does not match the dataset's %d+%d/%d", l, (*ds).K, (*ds).M, (*ds).SegmentSize), nil
	}
	plainSize, err := crypto.PlaintextSize(m.Size)
	if err != nil {
		return nil, fmt.Sprintf("manifest size: %v", err), nil
	}
	f := catalog.File{ID: id, DatasetID: o.DatasetID, Name: id, Size: plainSize, StoredSize: m.Size, HashAlg: m.HashAlg,
		HeaderObject: rec.hdr, Manifest: rec.mb, CreatedBy: "dozod-rebuild", CreatedAt: o.Now}
	rf := &File{FileID: id}
	info, infoErr := readFileInfo(ctx, o, byID, holders, rec, id)
	switch {
	case infoErr != nil:
		rf.NameFromID = true
		rf.Note = "no readable file info on storage (" + infoErr.Error() + "): named by its id, no checksums"
	case crypto.CiphertextSize(info.Size) != m.Size:
		rf.NameFromID = true
		rf.Note = "file info disagrees with the manifest on the size: named by its id, no checksums"
	default:
		f.Name, f.Size, f.SHA256, f.MD5, f.CreatedBy, f.CreatedAt = info.Name, info.Size, info.SHA256, info.MD5, info.CreatedBy, info.CreatedAt
	}
	rf.Name, rf.Size = f.Name, f.Size

	if *ds == nil {
		// The first verified manifest fixes the recreated dataset's layout;
		// later files must match it.
		plainSeg, err := plainSegmentSize(m.SegmentSize)
		if err != nil {
			return nil, fmt.Sprintf("segment size: %v", err), nil
		}
		title := o.Title
		if title == "" && info != nil {
			title = info.DatasetTitle
		}
		if title == "" {
			title = defaultTitle
		}
		gen, err := keyGeneration(ctx, o.Keys, o.TransitKey)
		if err != nil {
			return nil, "", err
		}
		d := catalog.Dataset{ID: o.DatasetID, Title: title, K: m.K, M: m.M, PlainSegmentSize: plainSeg, SegmentSize: m.SegmentSize,
			TransitKey: o.TransitKey, CreatedBy: o.Owner, CreatedAt: o.Now, KeyGeneration: gen}
		rep.Layout = fmt.Sprintf("%d+%d, %d-byte plaintext segments", m.K, m.M, plainSeg)
		rep.DatasetRow = "would be created"
		if o.Apply {
			if err := o.Catalog.CreateDataset(ctx, d); err != nil {
				return nil, "", fmt.Errorf("recreating dataset %s: %w", o.DatasetID, err)
			}
			rep.DatasetRow = "created"
		}
		*ds = &d
	} else if (*ds).Title == defaultTitle && o.Title == "" && info != nil && info.DatasetTitle != "" {
		// The file that recreated the row had no stored title; this one does.
		if o.Apply {
			if err := o.Catalog.SetDatasetTitle(ctx, o.DatasetID, info.DatasetTitle); err != nil {
				return nil, "", fmt.Errorf("setting the title of dataset %s: %w", o.DatasetID, err)
			}
		}
		(*ds).Title = info.DatasetTitle
	}
	if !o.Apply {
		rf.Action = "would restore"
		return rf, "", nil
	}
	err = o.Catalog.RestoreFile(ctx, f, m.Segments, o.Now)
	switch {
	case errors.Is(err, catalog.ErrNameTaken):
		return nil, fmt.Sprintf("the catalog already has a live file named %q", f.Name), nil
	case err != nil:
		return nil, "", err
	}
	rf.Action = "restored"
	return rf, "", nil
}

// keyGeneration is the key generation a recreated dataset row starts at:
// one less than the key's min_decryption_version. Every rotation that
// counted a generation first raised min_decryption_version above its
// previous value (and a key starts at 1 with generation 0), so this is at
// least the generation the lost row had, which any running dozod may have
// seen: the generation never goes back, and dozods keep their verified
// manifests and MACs instead of treating the key as rolled back.
func keyGeneration(ctx context.Context, keys Keys, name string) (int64, error) {
	ki, err := keys.ReadKey(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("reading transit key %s: %w", name, err)
	}
	return max(int64(ki.MinDecryptionVersion)-1, 0), nil
}

func joinProblems(ps []string) string {
	if len(ps) == 0 {
		return "no copy could be read"
	}
	s := ps[0]
	for _, p := range ps[1:] {
		s += "; " + p
	}
	return s
}

// readVerified reads and verifies the manifest and header copy on t.
func readVerified(ctx context.Context, o Options, auth storage.Authenticator, t storage.Target, id string) (*recovered, error) {
	if t == nil {
		return nil, errors.New("target not configured")
	}
	mb, err := filestore.ReadSmall(ctx, t, storage.ManifestKey(o.DatasetID, id), storage.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	m, err := storage.ParseManifest(mb)
	if err != nil {
		return nil, err
	}
	if err := m.Verify(ctx, auth); err != nil {
		return nil, fmt.Errorf("manifest MAC: %w", err)
	}
	if m.DatasetID != o.DatasetID || m.FileID != id {
		return nil, fmt.Errorf("the manifest names %s/%s", m.DatasetID, m.FileID)
	}
	hdr, err := filestore.ReadSmall(ctx, t, storage.HeaderKey(o.DatasetID, id), 64<<10)
	if err != nil {
		return nil, err
	}
	key, _, err := crypto.OpenHeaderObject(hdr, crypto.NewTransitIdentity(ctx, o.Keys, o.TransitKey, id))
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	return &recovered{m: m, mb: mb, hdr: hdr, fileKey: key, src: t}, nil
}

// readFileInfo opens the first sealed info copy that opens.
func readFileInfo(ctx context.Context, o Options, byID map[string]storage.Target, holders []string, rec *recovered, id string) (*filestore.FileInfo, error) {
	order := append([]string{rec.src.ID()}, holders...)
	var last error = errors.New("not stored")
	for _, tid := range order {
		t := byID[tid]
		if t == nil {
			continue
		}
		fi, err := filestore.ReadFileInfo(ctx, t, rec.fileKey, o.DatasetID, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			last = err
			continue
		}
		return fi, nil
	}
	return nil, last
}

// plainSegmentSize inverts crypto.StoredSegmentSize.
func plainSegmentSize(stored int64) (int64, error) {
	const enc = crypto.ChunkSize + crypto.ChunkOverhead
	if stored <= 0 || stored%enc != 0 {
		return 0, fmt.Errorf("stored segment size %d is not a whole number of chunks", stored)
	}
	p := stored / enc * crypto.ChunkSize
	if s, err := crypto.StoredSegmentSize(p); err != nil || s != stored {
		return 0, fmt.Errorf("stored segment size %d does not come from a plaintext segment size", stored)
	}
	return p, nil
}
