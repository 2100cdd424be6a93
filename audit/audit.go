// Package audit is dozo's tamper-evident audit log format: records, their
// canonical encoding, the hash chain that links them, and the verifier.
//
// Each record commits to the one before it: Hash = SHA-256(PrevHash ||
// Canonical(record)), with PrevHash of the first record all zeros. Editing,
// deleting or reordering any record therefore breaks the chain at that
// record, and Verify says which record and how. The chain does not stop
// someone who can rewrite the whole log from the altered record onwards; an
// anchor held outside the database closes that gap: an export kept
// elsewhere (dozo audit export), or a StoredAnchor, the head authenticated
// by a Vault Transit key dozod holds.
//
// The package is pure: no I/O beyond the io.Reader handed to ReadExport, no
// clock, no database. Records must never hold secrets (tokens, keys,
// plaintext); the broker builds them from request metadata only.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Results a record may carry.
const (
	ResultOK      = "ok"
	ResultRefused = "refused"
	ResultError   = "error"
	// ResultClientReported marks an event a client reported (a transfer it
	// finished): dozod records what it was told and vouches for nothing
	// beyond who said it.
	ResultClientReported = "client-reported"
)

// HashSize is the length of a record hash in bytes.
const HashSize = sha256.Size

// MaxFieldLen bounds every text field of a record, so one record stays
// small and a hostile export line cannot make the parser allocate much.
const MaxFieldLen = 4096

// MaxLineLen bounds one line of an export.
const MaxLineLen = 16 * MaxFieldLen

// Record is one audit event. The JSON form is one line of an export.
type Record struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`  // user name, or "dozod" for the broker itself; "" before authentication
	Action    string    `json:"action"` // e.g. "file.fetch", "dataset.delete"
	Object    string    `json:"object"` // e.g. "dataset/JGAD000001", "file/f-…"
	Dataset   string    `json:"dataset,omitempty"`
	Result    string    `json:"result"` // ok, refused, error, client-reported
	Status    int       `json:"status,omitempty"`
	Source    string    `json:"source,omitempty"` // remote address
	RequestID string    `json:"request_id,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	PrevHash  string    `json:"prev_hash"` // hex
	Hash      string    `json:"hash"`      // hex
}

// ZeroHash is PrevHash of the first record.
var ZeroHash = strings.Repeat("0", 2*HashSize)

// canonicalVersion separates this encoding from any later one.
const canonicalVersion = "dozo-audit/v1"

// Canonical returns the bytes a record's hash covers: every field except
// PrevHash and Hash, each as an 8-byte big-endian length followed by its
// bytes, in a fixed order. Length prefixes make the encoding injective: no
// two different records share it, whatever bytes their fields hold. Time is
// encoded as Unix nanoseconds (UTC), which the JSON form keeps exactly.
func (r *Record) Canonical() []byte {
	var b bytes.Buffer
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		b.Write(n[:])
		b.WriteString(s)
	}
	num := func(v uint64) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], v)
		b.Write(n[:])
	}
	field(canonicalVersion)
	num(r.Seq)
	num(uint64(r.Time.UnixNano()))
	field(r.Actor)
	field(r.Action)
	field(r.Object)
	field(r.Dataset)
	field(r.Result)
	num(uint64(int64(r.Status)))
	field(r.Source)
	field(r.RequestID)
	field(r.Detail)
	return b.Bytes()
}

// ComputeHash returns hex(SHA-256(prev || Canonical(r))) where prev is the
// decoded PrevHash. A malformed PrevHash is an error.
func (r *Record) ComputeHash() (string, error) {
	prev, err := decodeHash(r.PrevHash)
	if err != nil {
		return "", fmt.Errorf("prev_hash: %w", err)
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(r.Canonical())
	return hex.EncodeToString(h.Sum(nil)), nil
}

func decodeHash(s string) ([]byte, error) {
	if len(s) != 2*HashSize {
		return nil, fmt.Errorf("want %d hex digits, got %d", 2*HashSize, len(s))
	}
	if strings.ToLower(s) != s {
		return nil, errors.New("not lowercase hex")
	}
	return hex.DecodeString(s)
}

// Seal fills r.PrevHash with prev and r.Hash with the chained hash. It
// normalises Time to UTC, as the canonical form holds only the instant.
func (r *Record) Seal(prev string) error {
	if err := r.validate(); err != nil {
		return err
	}
	r.Time = r.Time.UTC()
	r.PrevHash = prev
	h, err := r.ComputeHash()
	if err != nil {
		return err
	}
	r.Hash = h
	return nil
}

// validate checks field sizes and the result value.
func (r *Record) validate() error {
	for name, v := range map[string]string{
		"actor": r.Actor, "action": r.Action, "object": r.Object, "dataset": r.Dataset, "result": r.Result,
		"source": r.Source, "request_id": r.RequestID, "detail": r.Detail,
	} {
		if len(v) > MaxFieldLen {
			return fmt.Errorf("audit: %s longer than %d bytes", name, MaxFieldLen)
		}
	}
	switch r.Result {
	case ResultOK, ResultRefused, ResultError, ResultClientReported:
	default:
		return fmt.Errorf("audit: result %q: want ok, refused, error or client-reported", r.Result)
	}
	if r.Seq == 0 {
		return errors.New("audit: seq starts at 1")
	}
	return nil
}

// Problem kinds Verify reports.
const (
	Edited      = "edited"      // the record's content no longer matches its hash
	Deleted     = "deleted"     // a gap in seq: a record is missing
	Reordered   = "reordered"   // seq goes backwards or repeats
	BrokenLink  = "broken link" // prev_hash is not the previous record's hash
	Malformed   = "malformed"   // not a record at all
	Truncated   = "truncated"   // a record an earlier export ended with is gone
	Rewritten   = "rewritten"   // a record an earlier export ended with has another hash
	HeadUnknown = "unexpected first record"
)

// Result is Verify's verdict.
type Result struct {
	OK      bool   `json:"ok"`
	Records int    `json:"records"`
	BadSeq  uint64 `json:"first_bad_seq,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Head    string `json:"head,omitempty"` // hash of the last good record
	// Anchors is how many anchors dozod made in Vault were checked;
	// AnchoredSeq and AnchoredAt name the latest (see StoredAnchor).
	Anchors     int       `json:"anchors,omitempty"`
	AnchoredSeq uint64    `json:"anchored_seq,omitempty"`
	AnchoredAt  time.Time `json:"anchored_at,omitzero"`
}

// Verifier checks records one at a time, in the order they are stored, so
// a log of any length verifies in constant memory.
type Verifier struct {
	n        int
	lastSeq  uint64
	lastHash string
	bad      *Result
}

// NewVerifier returns a verifier for a log that starts at seq 1.
func NewVerifier() *Verifier { return &Verifier{lastHash: ZeroHash} }

// Add checks the next record. After the first problem it ignores the rest
// (the first break is what matters: everything after it is unproven).
func (v *Verifier) Add(r *Record) {
	if v.bad != nil {
		return
	}
	v.n++
	fail := func(kind, format string, args ...any) {
		v.bad = &Result{Records: v.n, BadSeq: r.Seq, Kind: kind, Reason: kind + ": " + fmt.Sprintf(format, args...), Head: v.lastHash}
	}
	want := v.lastSeq + 1
	switch {
	case r.Seq == want:
	case r.Seq > want:
		fail(Deleted, "record %d follows record %d; %d record(s) missing", r.Seq, v.lastSeq, r.Seq-want)
		if v.lastSeq == 0 {
			v.bad.Reason = fmt.Sprintf("%s: the log starts at record %d; records 1..%d are missing", Deleted, r.Seq, r.Seq-1)
		}
		return
	default:
		fail(Reordered, "record %d follows record %d", r.Seq, v.lastSeq)
		return
	}
	h, err := r.ComputeHash()
	if err != nil {
		fail(Malformed, "record %d: %v", r.Seq, err)
		return
	}
	if h != r.Hash {
		// A record moved to another position (rows swapped) still matches
		// its hash under its original seq: say so, rather than "edited".
		if orig, ok := originalSeq(r); ok {
			fail(Reordered, "position %d holds record %d (records swapped or moved)", r.Seq, orig)
			return
		}
		fail(Edited, "record %d's content does not match its hash", r.Seq)
		return
	}
	if r.PrevHash != v.lastHash {
		fail(BrokenLink, "record %d does not link to record %d (prev_hash differs)", r.Seq, v.lastSeq)
		return
	}
	v.lastSeq, v.lastHash = r.Seq, r.Hash
}

// reorderWindow is how far from its position Verify looks for a moved
// record's original seq.
const reorderWindow = 64

// originalSeq finds the seq near r.Seq under which r's content matches its
// hash, if any.
func originalSeq(r *Record) (uint64, bool) {
	c := *r
	for d := uint64(1); d <= reorderWindow; d++ {
		for _, s := range []uint64{r.Seq + d, r.Seq - d} {
			if s == 0 || s > r.Seq+reorderWindow {
				continue
			}
			c.Seq = s
			if h, err := c.ComputeHash(); err == nil && h == r.Hash {
				return s, true
			}
		}
	}
	return 0, false
}

// Result returns the verdict so far.
func (v *Verifier) Result() Result {
	if v.bad != nil {
		return *v.bad
	}
	return Result{OK: true, Records: v.n, Head: v.lastHash}
}

// Anchor is a record (seq and hash) known from outside the log, such as
// the last line of an earlier export. A chain that verifies but no longer
// holds its anchor was cut short or rewritten from some point on: the one
// change a hash chain alone cannot reveal.
type Anchor struct {
	Seq  uint64
	Hash string
}

// CheckAnchor returns the verdict for a chain whose record at a.Seq is r
// (nil when there is none), given the chain's own result res.
func CheckAnchor(res Result, a Anchor, r *Record) Result {
	if !res.OK {
		return res
	}
	switch {
	case r == nil:
		return Result{Records: res.Records, BadSeq: a.Seq, Kind: Truncated, Head: res.Head,
			Reason: fmt.Sprintf("%s: record %d, which the anchor names, is not in the log (it ends at %d records)", Truncated, a.Seq, res.Records)}
	case r.Hash != a.Hash:
		return Result{Records: res.Records, BadSeq: a.Seq, Kind: Rewritten, Head: res.Head,
			Reason: fmt.Sprintf("%s: record %d's hash differs from the anchor's; the log was rewritten from there or earlier", Rewritten, a.Seq)}
	}
	return res
}

// LastRecord returns the last record of an export, to use as an Anchor.
func LastRecord(r io.Reader) (*Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineLen+1)
	var last []byte
	for sc.Scan() {
		if b := bytes.TrimSpace(sc.Bytes()); len(b) > 0 {
			last = append(last[:0], b...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if last == nil {
		return nil, errors.New("audit: empty export")
	}
	return ParseRecord(last)
}

// Verify checks a whole sequence of records in stored order.
func Verify(records []Record) Result {
	v := NewVerifier()
	for i := range records {
		v.Add(&records[i])
	}
	return v.Result()
}

// MarshalLine returns the record as one export line (JSON, no newline).
func (r *Record) MarshalLine() ([]byte, error) {
	r.Time = r.Time.UTC()
	return json.Marshal(r)
}

// ParseRecord parses one export line strictly: one JSON object, no unknown
// fields, fields within MaxFieldLen, well-formed hashes. It does not check
// the chain; feed the records to a Verifier.
func ParseRecord(line []byte) (*Record, error) {
	if len(line) > MaxLineLen {
		return nil, fmt.Errorf("audit: line longer than %d bytes", MaxLineLen)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("audit: bad record: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("audit: bad record: trailing data")
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	if _, err := decodeHash(r.PrevHash); err != nil {
		return nil, fmt.Errorf("audit: record %d prev_hash: %w", r.Seq, err)
	}
	if _, err := decodeHash(r.Hash); err != nil {
		return nil, fmt.Errorf("audit: record %d hash: %w", r.Seq, err)
	}
	r.Time = r.Time.UTC()
	return &r, nil
}

// VerifyExport reads an export (JSON lines, as dozo audit export writes
// them) and verifies its chain. A line that does not parse ends the check
// as Malformed, naming the line.
func VerifyExport(r io.Reader) (Result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineLen+1)
	v := NewVerifier()
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		rec, err := ParseRecord(b)
		if err != nil {
			res := v.Result()
			return Result{Records: res.Records, BadSeq: v.lastSeq + 1, Kind: Malformed,
				Reason: fmt.Sprintf("%s: line %d: %v", Malformed, line, err), Head: res.Head}, nil
		}
		v.Add(rec)
		if !v.Result().OK {
			return v.Result(), nil
		}
	}
	if err := sc.Err(); err != nil {
		return Result{}, fmt.Errorf("audit: reading export: %w", err)
	}
	return v.Result(), nil
}
