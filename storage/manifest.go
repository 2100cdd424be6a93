package storage

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ManifestVersion is the only manifest format this package reads and writes.
const ManifestVersion = 1

// MaxManifestSize bounds the encoded manifest ParseManifest accepts. A 200 GB
// file at 64 MiB segments and 4+2 encodes to about 2 MB.
const MaxManifestSize = 64 << 20

// MaxSegments bounds the number of segments in a manifest (at the maximum
// segment size that is 4 PiB, far beyond any file), so sizes computed from
// it cannot overflow.
const MaxSegments = 1 << 22

// minObjectBytes is a lower bound on the encoded size of any JSON object in
// a valid manifest (the smallest, a segment entry, exceeds 50 bytes).
const minObjectBytes = 40

// maxMACLen bounds Manifest.MAC (a Vault Transit HMAC is ~60 characters).
const maxMACLen = 1024

// signingContext separates manifest MACs from any other use of the same key.
const signingContext = "dozo storage manifest v1\x00"

// Manifest describes one stored stream: its layout and, for every segment,
// where each piece lives and its hash. It is the only thing a reader trusts,
// so it is authenticated (Sign/Verify) as a whole.
type Manifest struct {
	Version     int           `json:"version"`
	DatasetID   string        `json:"dataset"`
	FileID      string        `json:"file"`
	K           int           `json:"k"`
	M           int           `json:"m"`
	SegmentSize int64         `json:"segment_size"`
	Size        int64         `json:"size"` // total stored bytes
	HashAlg     string        `json:"hash_alg"`
	Segments    []SegmentMeta `json:"segments"`
	MAC         string        `json:"mac,omitempty"`
}

// SegmentMeta describes one segment. Pieces[i] is piece i: 0..K-1 data,
// K..K+M-1 parity.
type SegmentMeta struct {
	Index     int         `json:"index"`
	Size      int64       `json:"size"`       // true stored bytes in the segment
	PieceSize int64       `json:"piece_size"` // ceil(Size/K)
	Pieces    []PieceMeta `json:"pieces"`
}

// PieceMeta records where a piece is stored and its hash (hex, HashAlg).
type PieceMeta struct {
	Target string `json:"target"`
	Hash   string `json:"hash"`
}

// Layout returns the manifest's layout.
func (m *Manifest) Layout() Layout {
	return Layout{K: m.K, M: m.M, SegmentSize: m.SegmentSize}
}

// Authenticator computes and checks MACs over manifests: Vault Transit HMAC
// in production, a local HMAC key (NewHMACAuthenticator) in tests and
// offline tools.
type Authenticator interface {
	MAC(ctx context.Context, data []byte) (string, error)
	// Verify returns nil only if mac is a valid MAC of data.
	Verify(ctx context.Context, data []byte, mac string) error
}

// ErrBadMAC is returned (wrapped) when a manifest's MAC does not verify.
var ErrBadMAC = errors.New("storage: manifest MAC mismatch")

type hmacAuth struct{ key []byte }

const hmacPrefix = "hmac-sha256:"

// NewHMACAuthenticator returns an Authenticator using HMAC-SHA256 under key.
// MACs look like "hmac-sha256:<64 hex>". An empty key is refused at use.
func NewHMACAuthenticator(key []byte) Authenticator {
	return &hmacAuth{key: slices.Clone(key)}
}

func (h *hmacAuth) sum(data []byte) ([]byte, error) {
	if len(h.key) == 0 {
		return nil, errors.New("storage: empty HMAC key")
	}
	mac := hmac.New(sha256.New, h.key)
	mac.Write(data)
	return mac.Sum(nil), nil
}

func (h *hmacAuth) MAC(_ context.Context, data []byte) (string, error) {
	s, err := h.sum(data)
	if err != nil {
		return "", err
	}
	return hmacPrefix + hex.EncodeToString(s), nil
}

func (h *hmacAuth) Verify(_ context.Context, data []byte, mac string) error {
	want, err := h.sum(data)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(strings.TrimPrefix(mac, hmacPrefix))
	if err != nil || !strings.HasPrefix(mac, hmacPrefix) || !hmac.Equal(got, want) {
		return ErrBadMAC
	}
	return nil
}

// SigningBytes returns the canonical bytes a MAC covers: a domain-separation
// string followed by the JSON encoding of every field except MAC.
// encoding/json writes struct fields in declaration order and Validate
// admits one spelling per value (lowercase hex, no nil/empty ambiguity
// after normalisation), so equal manifests give equal bytes.
func (m *Manifest) SigningBytes() ([]byte, error) {
	c := *m
	c.MAC = ""
	if c.Segments == nil {
		c.Segments = []SegmentMeta{}
	}
	body, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return append([]byte(signingContext), body...), nil
}

// Sign validates m and sets m.MAC.
func (m *Manifest) Sign(ctx context.Context, a Authenticator) error {
	if err := m.Validate(); err != nil {
		return err
	}
	b, err := m.SigningBytes()
	if err != nil {
		return err
	}
	mac, err := a.MAC(ctx, b)
	if err != nil {
		return fmt.Errorf("storage: signing manifest of %s/%s: %w", m.DatasetID, m.FileID, err)
	}
	m.MAC = mac
	return nil
}

// Verify checks m.MAC and the manifest's structure. Callers must also check
// that DatasetID and FileID are the ones they asked for: the MAC proves the
// manifest is genuine, not that it is the manifest of the file requested.
func (m *Manifest) Verify(ctx context.Context, a Authenticator) error {
	if m.MAC == "" {
		return fmt.Errorf("storage: manifest of %s/%s is not signed", m.DatasetID, m.FileID)
	}
	b, err := m.SigningBytes()
	if err != nil {
		return err
	}
	if err := a.Verify(ctx, b, m.MAC); err != nil {
		return fmt.Errorf("storage: manifest of %s/%s: %w", m.DatasetID, m.FileID, err)
	}
	return m.Validate()
}

// Validate checks the manifest's structure: version, ids, layout, hash
// algorithm, and that the segments exactly tile Size — indices 0..n-1, all
// of SegmentSize bytes except a shorter, non-empty last one — each with
// PieceSize = ceil(Size/K), K+M pieces on distinct targets with well-formed
// hashes. It knows nothing about targets' failure domains.
func (m *Manifest) Validate() error {
	if m.Version != ManifestVersion {
		return fmt.Errorf("storage: unsupported manifest version %d", m.Version)
	}
	if err := ValidateID(m.DatasetID); err != nil {
		return fmt.Errorf("storage: manifest dataset: %w", err)
	}
	if err := ValidateID(m.FileID); err != nil {
		return fmt.Errorf("storage: manifest file: %w", err)
	}
	l := m.Layout()
	if err := l.Validate(); err != nil {
		return fmt.Errorf("storage: manifest of %s: %w", m.FileID, err)
	}
	if err := checkHashAlg(m.HashAlg); err != nil {
		return err
	}
	if m.Size < 0 {
		return fmt.Errorf("storage: manifest of %s: negative size %d", m.FileID, m.Size)
	}
	want := m.Size / m.SegmentSize
	if m.Size%m.SegmentSize != 0 {
		want++
	}
	if want > MaxSegments {
		return fmt.Errorf("storage: manifest of %s: %d segments exceed the limit of %d", m.FileID, want, MaxSegments)
	}
	if int64(len(m.Segments)) != want {
		return fmt.Errorf("storage: manifest of %s: size %d needs %d segments, have %d", m.FileID, m.Size, want, len(m.Segments))
	}
	if len(m.MAC) > maxMACLen {
		return fmt.Errorf("storage: manifest of %s: MAC too long", m.FileID)
	}
	for i := range m.MAC {
		if c := m.MAC[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("storage: manifest of %s: MAC contains byte %#x", m.FileID, c)
		}
	}
	n := len(m.Segments)
	for i := range m.Segments {
		size := m.SegmentSize
		if i == n-1 {
			size = m.Size - int64(n-1)*m.SegmentSize
		}
		if err := m.Segments[i].validate(l, i, size); err != nil {
			return fmt.Errorf("storage: manifest of %s: %w", m.FileID, err)
		}
	}
	return nil
}

// SegmentCount returns the number of segments the manifest's size and
// segment size call for; it does not look at Segments, so it holds for a
// head (see Head) too.
func (m *Manifest) SegmentCount() int {
	if m.SegmentSize <= 0 || m.Size <= 0 {
		return 0
	}
	return int((m.Size + m.SegmentSize - 1) / m.SegmentSize)
}

// Head returns a copy of m without its segment entries: the facts a reader
// needs to plan (ids, layout, size, hash algorithm) and the MAC of the
// whole manifest, which names the manifest the entries come from. A head
// is O(1) in the file's size; its entries travel separately (EntrySource).
func (m *Manifest) Head() *Manifest {
	c := *m
	c.Segments = nil
	return &c
}

// ValidateHead checks everything Validate checks except the segment
// entries, which a head does not carry.
func (m *Manifest) ValidateHead() error {
	c := *m
	c.Segments = nil
	n := c.SegmentCount()
	if n > MaxSegments {
		return fmt.Errorf("storage: manifest of %s: %d segments exceed the limit of %d", m.FileID, n, MaxSegments)
	}
	// Validate with stand-in entries would allocate per segment; check
	// the head's fields with an empty manifest of the same layout instead.
	c.Size = 0
	if err := c.Validate(); err != nil {
		return err
	}
	if m.Size < 0 {
		return fmt.Errorf("storage: manifest of %s: negative size %d", m.FileID, m.Size)
	}
	return nil
}

// CheckEntry checks that s is a well-formed entry for segment index of the
// file m describes (m may be a head): its index, its size and piece size
// as the layout gives them, K+M pieces on distinct targets with
// well-formed hashes. It cannot tell a genuine entry from a forged one:
// entries are trusted because dozod sends them only from a manifest whose
// MAC it verified.
func (m *Manifest) CheckEntry(index int, s *SegmentMeta) error {
	n := m.SegmentCount()
	if index < 0 || index >= n {
		return fmt.Errorf("storage: file %s has no segment %d", m.FileID, index)
	}
	if err := s.validate(m.Layout(), index, m.EntrySize(index)); err != nil {
		return fmt.Errorf("storage: manifest of %s: %w", m.FileID, err)
	}
	return nil
}

// EntrySize returns the stored size of segment index: SegmentSize, or what
// is left for the last one.
func (m *Manifest) EntrySize(index int) int64 {
	if n := m.SegmentCount(); index == n-1 {
		return m.Size - int64(n-1)*m.SegmentSize
	}
	return m.SegmentSize
}

// EntrySource returns the manifest entry of one segment on demand. A
// reader given a head (no Segments) asks it for each segment it reads; the
// entry it returns must have passed CheckEntry.
type EntrySource func(ctx context.Context, segment int) (*SegmentMeta, error)

func (s *SegmentMeta) validate(l Layout, index int, size int64) error {
	if s.Index != index {
		return fmt.Errorf("segment at position %d has index %d", index, s.Index)
	}
	if s.Size != size {
		return fmt.Errorf("segment %d: size %d, want %d", index, s.Size, size)
	}
	if ps := pieceSize(size, l.K); s.PieceSize != ps {
		return fmt.Errorf("segment %d: piece size %d, want %d", index, s.PieceSize, ps)
	}
	if len(s.Pieces) != l.Shards() {
		return fmt.Errorf("segment %d: %d pieces, want %d", index, len(s.Pieces), l.Shards())
	}
	for j, p := range s.Pieces {
		if err := ValidateID(p.Target); err != nil {
			return fmt.Errorf("segment %d piece %d: target: %w", index, j, err)
		}
		if !validHashHex(p.Hash) {
			return fmt.Errorf("segment %d piece %d: malformed hash %q", index, j, p.Hash)
		}
		for _, q := range s.Pieces[:j] {
			if q.Target == p.Target {
				return fmt.Errorf("segment %d: target %s holds more than one piece", index, p.Target)
			}
		}
	}
	return nil
}

func pieceSize(size int64, k int) int64 {
	return (size + int64(k) - 1) / int64(k)
}

// NewManifest assembles and validates an unsigned manifest from segments
// written by one or more Writers (e.g. a first run and resumed runs). The
// segments may be given in any order; each index must appear exactly once.
// Size is the sum of the segment sizes.
func NewManifest(datasetID, fileID string, layout Layout, hashAlg string, segments []SegmentMeta) (*Manifest, error) {
	segs := slices.Clone(segments)
	slices.SortFunc(segs, func(a, b SegmentMeta) int { return a.Index - b.Index })
	var size int64
	for i, s := range segs {
		if i > 0 && segs[i-1].Index == s.Index {
			return nil, fmt.Errorf("storage: segment %d given twice", s.Index)
		}
		if s.Size < 0 || s.Size > MaxSegmentSize {
			return nil, fmt.Errorf("storage: segment %d: bad size %d", s.Index, s.Size)
		}
		size += s.Size
	}
	m := &Manifest{
		Version:     ManifestVersion,
		DatasetID:   datasetID,
		FileID:      fileID,
		K:           layout.K,
		M:           layout.M,
		SegmentSize: layout.SegmentSize,
		Size:        size,
		HashAlg:     hashAlg,
		Segments:    segs,
	}
	if m.Segments == nil {
		m.Segments = []SegmentMeta{}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Marshal returns the manifest's JSON encoding, as ParseManifest reads it.
func (m *Manifest) Marshal() ([]byte, error) {
	c := *m
	if c.Segments == nil {
		c.Segments = []SegmentMeta{}
	}
	return json.Marshal(&c)
}

// ParseManifest decodes and validates a manifest. It is strict: at most
// MaxManifestSize bytes, no unknown fields, nothing after the object. It
// does not check the MAC; call Verify.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("storage: manifest of %d bytes exceeds the limit of %d", len(b), MaxManifestSize)
	}
	// encoding/json allocates a struct per JSON object before Validate can
	// look at it, and "{}," costs 3 input bytes but up to 48 bytes of
	// memory. Every object of a valid manifest is far larger (a piece entry
	// is over 80 bytes), so bounding the object count by the input size
	// keeps a hostile manifest from turning 64 MiB into gigabytes.
	// '{' cannot occur inside the strings of a valid manifest except the MAC.
	if n := bytes.Count(b, []byte("{")); n > len(b)/minObjectBytes+1+maxMACLen {
		return nil, fmt.Errorf("storage: parsing manifest: implausibly many JSON objects (%d in %d bytes)", n, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("storage: parsing manifest: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("storage: parsing manifest: trailing data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
