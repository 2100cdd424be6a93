package audit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// StoredAnchor is the chain head (a record's seq and hash) as dozod had it
// at Time, with MAC, Transit's HMAC of AnchorInput under a key only dozod
// may use. The HMAC request lands in Vault's own audit log, outside the
// database that holds the chain, so a log later cut short below Seq, or
// rewritten at or before it, no longer matches an anchor whose MAC Vault
// still accepts.
type StoredAnchor struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	MAC  string    `json:"mac"`
	Time time.Time `json:"time"`
}

const anchorVersion = "dozo-audit-anchor/v1"

// AnchorInput returns the bytes an anchor's MAC covers: a version string,
// the seq, the hash and the time (Unix nanoseconds), length-prefixed like
// Canonical, so no two anchors share them.
func AnchorInput(seq uint64, hash string, t time.Time) []byte {
	var b bytes.Buffer
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		b.Write(n[:])
		b.WriteString(s)
	}
	num := func(v uint64) {
		binary.BigEndian.PutUint64(n[:], v)
		b.Write(n[:])
	}
	field(anchorVersion)
	num(seq)
	field(hash)
	num(uint64(t.UnixNano()))
	return b.Bytes()
}

// Input is AnchorInput for a.
func (a *StoredAnchor) Input() []byte { return AnchorInput(a.Seq, a.Hash, a.Time) }

// ForgedAnchor is the Kind when a stored anchor's MAC does not verify.
const ForgedAnchor = "forged anchor"

// AnchorForged returns the verdict for a chain whose stored anchor a has a
// MAC the key service refuses: the anchor table was edited.
func AnchorForged(res Result, a StoredAnchor) Result {
	return Result{Records: res.Records, BadSeq: a.Seq, Kind: ForgedAnchor, Head: res.Head,
		Reason: fmt.Sprintf("%s: the anchor of record %d (dated %s) does not verify with dozod's audit key in Vault; the anchor table was altered",
			ForgedAnchor, a.Seq, a.Time.UTC().Format(time.RFC3339))}
}

// CheckStoredAnchor is CheckAnchor for an anchor dozod made and Vault
// authenticated (its MAC already checked): r is the chain's record at
// a.Seq, nil when there is none.
func CheckStoredAnchor(res Result, a StoredAnchor, r *Record) Result {
	out := CheckAnchor(res, Anchor{Seq: a.Seq, Hash: a.Hash}, r)
	when := a.Time.UTC().Format(time.RFC3339)
	switch out.Kind {
	case Truncated:
		out.Reason = fmt.Sprintf("%s: record %d was anchored in Vault at %s but the log ends at %d records; records were removed from its end",
			Truncated, a.Seq, when, res.Records)
	case Rewritten:
		out.Reason = fmt.Sprintf("%s: record %d's hash differs from the one anchored in Vault at %s; the log was rewritten from there or earlier",
			Rewritten, a.Seq, when)
	}
	return out
}

// aggregatePrefix starts the Detail of an aggregate record.
const aggregatePrefix = "aggregate:"

// AggregateDetail is the Detail of a record that stands for count refused
// requests like the one recorded before it from the same source (same
// action and status), the first at first and the last at last, which were
// counted rather than recorded one by one.
func AggregateDetail(count uint64, first, last time.Time) string {
	return fmt.Sprintf("%s count=%d first=%s last=%s", aggregatePrefix, count,
		first.UTC().Format(time.RFC3339Nano), last.UTC().Format(time.RFC3339Nano))
}

// ParseAggregate reads an AggregateDetail; ok is false for any other detail.
func ParseAggregate(detail string) (count uint64, first, last time.Time, ok bool) {
	rest, found := strings.CutPrefix(detail, aggregatePrefix+" ")
	if !found {
		return 0, time.Time{}, time.Time{}, false
	}
	f := strings.Fields(rest)
	if len(f) != 3 {
		return 0, time.Time{}, time.Time{}, false
	}
	c, ok1 := strings.CutPrefix(f[0], "count=")
	a, ok2 := strings.CutPrefix(f[1], "first=")
	b, ok3 := strings.CutPrefix(f[2], "last=")
	if !ok1 || !ok2 || !ok3 {
		return 0, time.Time{}, time.Time{}, false
	}
	var err1, err2, err3 error
	count, err1 = strconv.ParseUint(c, 10, 64)
	first, err2 = time.Parse(time.RFC3339Nano, a)
	last, err3 = time.Parse(time.RFC3339Nano, b)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, time.Time{}, time.Time{}, false
	}
	return count, first, last, true
}
