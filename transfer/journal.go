package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/client"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

// JournalVersion is the journal format this package writes and reads.
//
// Version 4 records, per segment, the SHA-256 of the plaintext from the
// file's start to the segment's end (the upload computes that running
// hash anyway), where version 3 recorded each segment's own BLAKE3 hash,
// an extra pass over every byte. Version 3 recorded a segment's hash
// before any of its pieces was stored (version 2 only before the commit);
// version 2 hashed with BLAKE3 (version 1: SHA-256). A journal of
// another version is not read: its upload starts over with a new key
// (see JournalVersionError).
const JournalVersion = 4

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
// records what identifies the source (size, mtime, inode) and, for every
// segment whose ciphertext may be on storage, the SHA-256 of the
// plaintext from byte 0 to that segment's end. The invariant: a segment's
// prefix hash is recorded, and synced, before the first of its pieces is
// stored, committed or not; and a resume re-reads the source from byte 0
// and reuses the key only if the SHA-256 at every recorded segment's end
// equals the recorded one. Equal hashes of equal-length prefixes mean
// equal prefixes (else SHA-256 has a collision), so every byte whose
// ciphertext may be on storage is proven unchanged before any new
// ciphertext is made.
//
// The journal holds digests only, never a hash's internal state: that
// keeps up to 63 bytes of unhashed input, plaintext at a boundary that
// is not a multiple of 64 bytes (the file's end).
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
	Segments         []SegmentHash `json:"segments"` // in index order, each index once
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

// SegmentHash is the SHA-256 (hex) of the plaintext from the file's
// start to the end of segment Index, recorded before any piece of the
// segment is stored. A value of another form never equals a computed
// hash, so it can only make a resume start over.
type SegmentHash struct {
	Index        int    `json:"index"`
	PrefixSHA256 string `json:"prefix_sha256"`
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
	j, err := parseJournal(b)
	if ve := (*JournalVersionError)(nil); errors.As(err, &ve) {
		ve.Path = path
		return nil, ve
	}
	if err != nil {
		return nil, fmt.Errorf("upload journal %s: %w", path, err)
	}
	j.path = path
	return j, nil
}

// parseJournal decodes a journal of this version. Besides the JSON it
// checks what the resume logic relies on: a positive segment size, a
// size that is not negative, and segment indices that exist in a file of
// that size, each once and in order.
func parseJournal(b []byte) (*Journal, error) {
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	if j.Version != JournalVersion {
		return nil, &JournalVersionError{Version: j.Version, UploadID: j.UploadID}
	}
	if j.PlainSegmentSize <= 0 || j.Source.Size < 0 {
		return nil, fmt.Errorf("segment size %d, file size %d", j.PlainSegmentSize, j.Source.Size)
	}
	n := plainSegments(j.Source.Size, j.PlainSegmentSize)
	for k, s := range j.Segments {
		if s.Index < 0 || int64(s.Index) >= n || (k > 0 && s.Index <= j.Segments[k-1].Index) {
			return nil, fmt.Errorf("segment index %d out of order or outside the file's %d segments", s.Index, n)
		}
	}
	return &j, nil
}

// plainSegments is how many segments a file of size bytes has: an empty
// file has one, empty.
func plainSegments(size, plainSegmentSize int64) int64 {
	n := size / plainSegmentSize
	if size%plainSegmentSize != 0 {
		n++
	}
	return max(1, n)
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
	if e.Version < JournalVersion {
		return fmt.Sprintf("upload journal %s was written by an older dozo (format %d; this one reads format %d only)", e.Path, e.Version, JournalVersion)
	}
	return fmt.Sprintf("upload journal %s has format %d; this dozo reads format %d only", e.Path, e.Version, JournalVersion)
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

// Record notes the SHA-256 of the plaintext up to the end of segment i,
// which must come before any of the segment's pieces is stored (see the
// Journal doc). Recording a segment again with another hash is an error
// wrapping ErrSourceChanged: its first plaintext may already be on
// storage under this key. changed is false when the segment was already
// recorded with this hash.
func (j *Journal) Record(i int, prefixSHA256 string) (changed bool, err error) {
	for _, s := range j.Segments {
		if s.Index != i {
			continue
		}
		if s.PrefixSHA256 != prefixSHA256 {
			return false, fmt.Errorf("%w: the content of segment %d changed while it was being uploaded", ErrSourceChanged, i)
		}
		return false, nil
	}
	j.Segments = append(j.Segments, SegmentHash{Index: i, PrefixSHA256: prefixSHA256})
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
// recorded segments' plaintext before any new ciphertext is made.
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
	// Every committed segment needs a recorded prefix hash: the journal
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
// committed: their pieces may be on storage). At the end of every
// recorded segment the SHA-256 of everything read so far must equal the
// recorded one; a mismatch, a missing hash or a file ending early wraps
// ErrSourceChanged: the content changed although size and mtime did not,
// and the key must not be used again. progress, if set, is told of the
// bytes read.
func VerifyPrefix(src io.Reader, j *Journal, start int, progress func(int64)) (*filestore.Checksums, error) {
	want := map[int]string{}
	end := start
	for _, s := range j.Segments {
		want[s.Index] = s.PrefixSHA256
		end = max(end, s.Index+1)
	}
	ph := newPrefixHashes()
	// The prefix hashes stop at start; past it only a copy of the running
	// SHA-256 goes on, to check the recorded segments there.
	var w io.Writer = ph
	running := ph.SHA256
	buf := make([]byte, 1<<20)
	for i := range end {
		sum, ok := want[i]
		if !ok {
			return nil, fmt.Errorf("%w: the journal has no plaintext hash of segment %d", ErrSourceChanged, i)
		}
		if i == start {
			c, err := cloneSHA256(ph.SHA256)
			if err != nil {
				return nil, err
			}
			w, running = c, c
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
		if hex.EncodeToString(running.Sum(nil)) != sum {
			return nil, fmt.Errorf("%w: the content of segment %d (or before it) changed since it was sent", ErrSourceChanged, i)
		}
	}
	return ph, nil
}

// cloneSHA256 returns an independent copy of SHA-256 h's state (through
// its binary form, which crypto/sha256 has in every mode).
func cloneSHA256(h hash.Hash) (hash.Hash, error) {
	st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	c := sha256.New()
	if err := c.(encoding.BinaryUnmarshaler).UnmarshalBinary(st); err != nil {
		return nil, err
	}
	return c, nil
}
