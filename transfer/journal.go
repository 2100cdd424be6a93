package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/client"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"filippo.io/age"
	"github.com/zeebo/blake3"

	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

// JournalVersion is the journal format this package writes and reads.
//
// Version 3 records a segment's plaintext hash before any of its pieces
// is stored (version 2 recorded it only before the commit, so pieces of a
// segment could be on storage with no hash in the journal); version 2
// records hashes as BLAKE3 (version 1: SHA-256). An older journal is
// unreadable to this version, so such an upload starts over.
const JournalVersion = 3

// Journal is the local record of one upload in progress, kept in
// <config>/uploads/<id>.json (0600) while the upload runs and removed when
// it completes. It is what makes an interrupted upload resumable: with it,
// a second run continues at the next uncommitted segment under the same
// file key and nonce.
//
// The file key and nonce are stored only sealed (age-encrypted) to the
// user's own recipient, so the journal alone — a backup, a shared home —
// reveals nothing. Sealing does not authenticate the sender, so a resume
// also has dozod confirm that its session holds this key and nonce.
//
// Reusing the key and nonce is safe only for the same plaintext: the same
// chunk counter sealing other bytes would reuse keystream. So the journal
// records what identifies the source (size, mtime, inode) and the BLAKE3
// hash of the plaintext of every segment whose ciphertext may be on
// storage — recorded and synced before the first of its pieces is stored,
// committed or not — and a resume re-hashes every recorded segment.
type Journal struct {
	Version int    `json:"version"`
	Broker  string `json:"broker"`
	Dataset string `json:"dataset"`
	Name    string `json:"name"`
	Path    string `json:"path"` // absolute

	UploadID string `json:"upload_id"`
	FileID   string `json:"file_id"`
	// SealedKey is an age file (base64) for Recipient holding the 16-byte
	// file key followed by the 16-byte payload nonce.
	SealedKey string `json:"sealed_key"`
	Recipient string `json:"recipient"`

	Source           SourceInfo    `json:"source"`
	PlainSegmentSize int64         `json:"plain_segment_size"`
	Segments         []SegmentHash `json:"segments"` // in index order
	CreatedAt        time.Time     `json:"created_at"`
	UpdatedAt        time.Time     `json:"updated_at"`

	path string // where it is stored
}

// SourceInfo identifies a source file's version cheaply.
type SourceInfo struct {
	Size    int64  `json:"size"`
	MTimeNS int64  `json:"mtime_ns"`
	Inode   uint64 `json:"inode"`
	Device  uint64 `json:"device"`
}

// SegmentHash is the BLAKE3 hash (hex) of one segment's plaintext,
// recorded before any piece of the segment is stored. BLAKE3, being a
// collision-resistant hash like SHA-256, proves the plaintext unchanged
// as well, at twice the speed.
type SegmentHash struct {
	Index  int    `json:"index"`
	BLAKE3 string `json:"blake3"`
}

// JournalPath returns where the journal of an upload of absPath as
// dataset/name through broker lives. The name is a hash of all four, so
// it reveals none of them and the same file uploaded under two names or
// to two datasets has two independent journals.
func JournalPath(d *client.Dir, broker, dataset, name, absPath string) string {
	h := sha256.New()
	for _, s := range []string{broker, dataset, name, absPath} {
		io.WriteString(h, s)
		h.Write([]byte{0})
	}
	return filepath.Join(d.JournalDir(), hex.EncodeToString(h.Sum(nil)[:16])+".json")
}

// LoadJournal reads the journal at path; (nil, nil) if there is none. A
// journal that is a link, not ours or readable by others is an error
// wrapping UnsafePathError, or one saying so: it is not trusted, and not
// removed either.
func LoadJournal(path string) (*Journal, error) {
	op := "reading the upload journal"
	jf, err := openOwnFileRead(op, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer jf.Close()
	fi, err := jf.Stat()
	if err != nil {
		return nil, opError(op, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, hintError("reading "+path, "it must be readable by you only: chmod 600 "+path+" (and consider it exposed)",
			&UnsafePathError{Path: path, Why: fmt.Sprintf("has permissions %v, too open", fi.Mode().Perm())})
	}
	b, err := io.ReadAll(io.LimitReader(jf, maxJournalBytes))
	if err != nil {
		return nil, opError(op, err)
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("upload journal %s: %w", path, err)
	}
	if j.Version != JournalVersion {
		return nil, &JournalVersionError{Path: path, Version: j.Version, UploadID: j.UploadID}
	}
	j.path = path
	return &j, nil
}

// maxJournalBytes bounds what LoadJournal reads (a journal of the largest
// file holds some 10^5 segment hashes).
const maxJournalBytes = 64 << 20

// JournalVersionError is a journal of another format version: it is not
// resumed, but its session (UploadID) is worth aborting, since it holds
// the name at dozod.
type JournalVersionError struct {
	Path     string
	Version  int
	UploadID string
}

func (e *JournalVersionError) Error() string {
	return fmt.Sprintf("upload journal %s: version %d, want %d", e.Path, e.Version, JournalVersion)
}

// Save writes the journal atomically and durably (0600 in a 0700
// directory): the file is synced before it is renamed into place and the
// directory after, so a recorded segment hash survives a crash or power
// loss. The rename replaces whatever is at the path; it never writes
// through a link there.
func (j *Journal) Save() error {
	dir := filepath.Dir(j.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	j.UpdatedAt = time.Now().UTC()
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := client.WriteSecret(j.path, append(b, '\n')); err != nil {
		return err
	}
	return syncDirErr(dir)
}

// Record notes the plaintext hash of segment i, which must come before
// any of the segment's pieces is stored (see the Journal doc). Recording
// a segment again with another hash is an error wrapping ErrSourceChanged:
// its first plaintext may already be on storage under this key. changed
// is false when the segment was already recorded with this hash.
func (j *Journal) Record(i int, blake3Hex string) (changed bool, err error) {
	for _, s := range j.Segments {
		if s.Index != i {
			continue
		}
		if s.BLAKE3 != blake3Hex {
			return false, fmt.Errorf("%w: the content of segment %d changed while it was being uploaded", ErrSourceChanged, i)
		}
		return false, nil
	}
	j.Segments = append(j.Segments, SegmentHash{Index: i, BLAKE3: blake3Hex})
	slices.SortFunc(j.Segments, func(a, b SegmentHash) int { return a.Index - b.Index })
	return true, nil
}

// Remove deletes the journal; a missing one is fine.
func (j *Journal) Remove() error {
	if err := os.Remove(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// SealKey encrypts fileKey||nonce to r with age.
func SealKey(r age.Recipient, fileKey, nonce []byte) (string, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return "", err
	}
	secret := append(slices.Clone(fileKey), nonce...)
	defer clear(secret)
	if _, err := w.Write(secret); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// OpenKey unseals the journal's file key and nonce with id. The caller
// clears the key when done.
func (j *Journal) OpenKey(id age.Identity) (fileKey, nonce []byte, err error) {
	b, err := base64.StdEncoding.DecodeString(j.SealedKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sealed key: %w", err)
	}
	r, err := age.Decrypt(bytes.NewReader(b), id)
	if err != nil {
		return nil, nil, fmt.Errorf("unsealing the file key: %w", err)
	}
	secret, err := io.ReadAll(io.LimitReader(r, 1024))
	if err != nil {
		return nil, nil, fmt.Errorf("unsealing the file key: %w", err)
	}
	defer clear(secret)
	if len(secret) != crypto.FileKeySize+crypto.NonceSize {
		return nil, nil, fmt.Errorf("sealed key holds %d bytes, want %d", len(secret), crypto.FileKeySize+crypto.NonceSize)
	}
	return slices.Clone(secret[:crypto.FileKeySize]), slices.Clone(secret[crypto.FileKeySize:]), nil
}

// ErrSourceChanged means the journal's session may not be continued: the
// source, the journal or the session differ from what was recorded, so the
// upload must start over with a new file key.
var ErrSourceChanged = errors.New("cannot resume")

// ResumePoint decides whether an upload recorded in j may continue, given
// the source as it is now and the segments dozod has committed. It returns
// the segment to continue at, or an error wrapping ErrSourceChanged saying
// why a fresh start (new key and nonce) is needed.
//
// It is the cheap half of the check; VerifyPrefix must then re-hash the
// committed segments' plaintext before any new ciphertext is made.
func ResumePoint(j *Journal, now SourceInfo, plainSegmentSize int64, committed []storage.SegmentMeta) (int, error) {
	changed := func(format string, args ...any) (int, error) {
		return 0, fmt.Errorf("%w: %s", ErrSourceChanged, fmt.Sprintf(format, args...))
	}
	switch {
	case j.Source.Size != now.Size:
		return changed("the file's size changed from %d to %d bytes", j.Source.Size, now.Size)
	case j.Source.MTimeNS != now.MTimeNS:
		return changed("the file was modified since the interrupted upload")
	case j.Source.Inode != now.Inode || j.Source.Device != now.Device:
		return changed("the path now names another file (inode changed)")
	case j.PlainSegmentSize != plainSegmentSize || plainSegmentSize <= 0:
		return changed("the segment size changed")
	}
	// dozod commits segments in order; count the contiguous prefix.
	idx := make([]int, 0, len(committed))
	for _, s := range committed {
		idx = append(idx, s.Index)
	}
	slices.Sort(idx)
	start := 0
	for _, i := range idx {
		if i == start {
			start++
		} else if i > start {
			break
		}
	}
	// Every committed segment needs a recorded plaintext hash: the journal
	// is written before each commit, so a gap means the journal is not the
	// one that went with this session.
	hashes := map[int]bool{}
	for _, s := range j.Segments {
		hashes[s.Index] = true
	}
	for i := range start {
		if !hashes[i] {
			return changed("the journal has no plaintext hash of committed segment %d", i)
		}
	}
	return start, nil
}

// newPrefixHashes returns the running state after reading a prefix of the
// source: the whole-file SHA-256 and MD5 so far.
func newPrefixHashes() *filestore.Checksums { return filestore.NewChecksums(true) }

// VerifyPrefix re-reads src from its start: segments [0, start), whose
// whole-file SHA-256 and MD5 it returns so the upload can carry them on,
// and then every further segment the journal records (sent but not
// committed: their pieces may be on storage). Each segment's plaintext
// must match its recorded BLAKE3 hash; a mismatch, a missing hash or a
// file ending early wraps ErrSourceChanged: the content changed although
// size and mtime did not, and the key must not be used again. progress,
// if set, is told of the bytes read.
func VerifyPrefix(src io.Reader, j *Journal, start int, progress func(int64)) (*filestore.Checksums, error) {
	want := map[int]string{}
	end := start
	for _, s := range j.Segments {
		want[s.Index] = s.BLAKE3
		end = max(end, s.Index+1)
	}
	ph := newPrefixHashes()
	buf := make([]byte, 1<<20)
	for i := range end {
		sum, ok := want[i]
		if !ok {
			return nil, fmt.Errorf("%w: the journal has no plaintext hash of segment %d", ErrSourceChanged, i)
		}
		seg := blake3.New()
		var w io.Writer = seg
		if i < start {
			w = io.MultiWriter(seg, ph)
		}
		size := min(j.PlainSegmentSize, j.Source.Size-int64(i)*j.PlainSegmentSize)
		n, err := io.CopyBuffer(w, io.LimitReader(src, max(size, 0)), buf)
		if progress != nil {
			progress(n)
		}
		if err != nil {
			return nil, fmt.Errorf("re-reading segment %d: %w", i, err)
		}
		if n != size || size < 0 {
			return nil, fmt.Errorf("%w: the file ends inside segment %d, which was sent", ErrSourceChanged, i)
		}
		if hex.EncodeToString(seg.Sum(nil)) != sum {
			return nil, fmt.Errorf("%w: the content of segment %d changed since it was sent", ErrSourceChanged, i)
		}
	}
	return ph, nil
}
