package audit

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// chain builds n sealed records.
func chain(t *testing.T, n int) []Record {
	t.Helper()
	prev := ZeroHash
	var out []Record
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)
	for i := 1; i <= n; i++ {
		r := Record{Seq: uint64(i), Time: t0.Add(time.Duration(i) * time.Second), Actor: "sam", Action: "file.fetch",
			Object: fmt.Sprintf("file/f-%d", i), Dataset: "JGAD000001", Result: ResultOK, Status: 200,
			Source: "127.0.0.1:5555", RequestID: fmt.Sprintf("rid%d", i)}
		if err := r.Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = r.Hash
		out = append(out, r)
	}
	return out
}

func TestVerifyGood(t *testing.T) {
	rs := chain(t, 10)
	res := Verify(rs)
	if !res.OK || res.Records != 10 || res.Head != rs[9].Hash {
		t.Fatalf("good chain: %+v", res)
	}
	if res := Verify(nil); !res.OK || res.Records != 0 {
		t.Fatalf("empty chain: %+v", res)
	}
}

func TestVerifyTamper(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func([]Record) []Record
		badSeq  uint64
		kind    string
		records int
	}{
		{"edited actor", func(rs []Record) []Record { rs[4].Actor = "mallory"; return rs }, 5, Edited, 5},
		{"edited result", func(rs []Record) []Record { rs[2].Result = ResultRefused; return rs }, 3, Edited, 3},
		{"edited time", func(rs []Record) []Record { rs[6].Time = rs[6].Time.Add(time.Nanosecond); return rs }, 7, Edited, 7},
		{"edited and rehashed", func(rs []Record) []Record {
			rs[3].Detail = "nothing happened"
			rs[3].Seal(rs[3].PrevHash)
			return rs
		}, 5, BrokenLink, 5},
		{"deleted", func(rs []Record) []Record { return append(rs[:4:4], rs[5:]...) }, 6, Deleted, 5},
		{"deleted first", func(rs []Record) []Record { return rs[1:] }, 2, Deleted, 1},
		{"deleted and renumbered", func(rs []Record) []Record {
			out := append(rs[:4:4], rs[5:]...)
			for i := range out {
				out[i].Seq = uint64(i + 1)
			}
			return out
		}, 5, Reordered, 5},
		{"swapped rows, seq kept in place", func(rs []Record) []Record {
			rs[3], rs[4] = rs[4], rs[3]
			rs[3].Seq, rs[4].Seq = 4, 5
			return rs
		}, 4, Reordered, 4},
		{"swapped lines", func(rs []Record) []Record { rs[3], rs[4] = rs[4], rs[3]; return rs }, 5, Deleted, 4},
		{"bad prev hash", func(rs []Record) []Record { rs[0].PrevHash = strings.Repeat("1", 64); return rs }, 1, Edited, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := Verify(c.tamper(chain(t, 10)))
			if res.OK || res.BadSeq != c.badSeq || res.Kind != c.kind || res.Records != c.records {
				t.Fatalf("got %+v, want first bad seq %d kind %q after %d records", res, c.badSeq, c.kind, c.records)
			}
			if !strings.Contains(res.Reason, fmt.Sprint(c.badSeq)) {
				t.Fatalf("reason %q does not name record %d", res.Reason, c.badSeq)
			}
		})
	}
}

func TestExportRoundTrip(t *testing.T) {
	rs := chain(t, 5)
	rs[2].Detail = "key rotated to v2; \"quoted\"\nnewline"
	rs[2].Seal(rs[1].Hash)
	rs[3].Seal(rs[2].Hash)
	rs[4].Seal(rs[3].Hash)
	var buf bytes.Buffer
	for i := range rs {
		b, err := rs[i].MarshalLine()
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	res, err := VerifyExport(bytes.NewReader(buf.Bytes()))
	if err != nil || !res.OK || res.Records != 5 {
		t.Fatalf("export: %+v %v", res, err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	lines[1] = strings.Replace(lines[1], `"actor":"sam"`, `"actor":"eve"`, 1)
	res, _ = VerifyExport(strings.NewReader(strings.Join(lines, "\n")))
	if res.OK || res.BadSeq != 2 || res.Kind != Edited {
		t.Fatalf("edited export line: %+v", res)
	}
	lines[1] = "{not json"
	res, _ = VerifyExport(strings.NewReader(strings.Join(lines, "\n")))
	if res.OK || res.Kind != Malformed || !strings.Contains(res.Reason, "line 2") {
		t.Fatalf("malformed export line: %+v", res)
	}
}

func TestAnchor(t *testing.T) {
	rs := chain(t, 6)
	var buf bytes.Buffer
	for i := range rs[:4] {
		b, _ := rs[i].MarshalLine()
		buf.Write(append(b, '\n'))
	}
	last, err := LastRecord(&buf)
	if err != nil || last.Seq != 4 {
		t.Fatalf("last record: %+v %v", last, err)
	}
	a := Anchor{Seq: last.Seq, Hash: last.Hash}
	if res := CheckAnchor(Verify(rs), a, &rs[3]); !res.OK {
		t.Fatalf("intact log fails its anchor: %+v", res)
	}
	// Cut after record 3: the chain itself still verifies.
	cut := rs[:3]
	if res := Verify(cut); !res.OK {
		t.Fatal("a truncated chain should verify on its own")
	}
	if res := CheckAnchor(Verify(cut), a, nil); res.OK || res.Kind != Truncated || res.BadSeq != 4 {
		t.Fatalf("truncation: %+v", res)
	}
	// Rewritten wholesale from record 2 on, consistently rehashed.
	rw := chain(t, 6)
	rw[1].Actor = "mallory"
	for i := 1; i < len(rw); i++ {
		rw[i].Seal(rw[i-1].Hash)
	}
	if res := CheckAnchor(Verify(rw), a, &rw[3]); res.OK || res.Kind != Rewritten {
		t.Fatalf("rewrite: %+v", res)
	}
	if _, err := LastRecord(strings.NewReader("\n")); err == nil {
		t.Fatal("empty export has a last record")
	}
}

func TestParseRecordStrict(t *testing.T) {
	rs := chain(t, 1)
	good, _ := rs[0].MarshalLine()
	if _, err := ParseRecord(good); err != nil {
		t.Fatal(err)
	}
	for name, line := range map[string]string{
		"unknown field": strings.Replace(string(good), `{`, `{"token":"x",`, 1),
		"trailing":      string(good) + "{}",
		"bad hash":      strings.Replace(string(good), rs[0].Hash, "zz", 1),
		"upper hash":    strings.Replace(string(good), rs[0].Hash, strings.ToUpper(rs[0].Hash), 1),
		"bad result":    strings.Replace(string(good), `"result":"ok"`, `"result":"maybe"`, 1),
		"seq 0":         strings.Replace(string(good), `"seq":1`, `"seq":0`, 1),
		"huge field":    strings.Replace(string(good), `"actor":"sam"`, `"actor":"`+strings.Repeat("a", MaxFieldLen+1)+`"`, 1),
	} {
		if _, err := ParseRecord([]byte(line)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestCanonicalInjective(t *testing.T) {
	a := Record{Seq: 1, Actor: "ab", Action: "c", Result: ResultOK}
	b := Record{Seq: 1, Actor: "a", Action: "bc", Result: ResultOK}
	if bytes.Equal(a.Canonical(), b.Canonical()) {
		t.Fatal("field boundaries are ambiguous")
	}
}

func FuzzParseRecord(f *testing.F) {
	rs := chain(&testing.T{}, 2)
	for i := range rs {
		b, _ := rs[i].MarshalLine()
		f.Add(b)
	}
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseRecord(line)
		if err != nil {
			return
		}
		// A parsed record re-encodes and parses to the same record.
		b, err := r.MarshalLine()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseRecord(b)
		if err != nil {
			t.Fatalf("re-encoded record does not parse: %v", err)
		}
		if !bytes.Equal(r.Canonical(), r2.Canonical()) || r.Hash != r2.Hash || r.PrevHash != r2.PrevHash {
			t.Fatal("round trip changed the record")
		}
	})
}

// TestClientReportedRecord: a client-reported record seals, exports and
// verifies offline like any other, old records before it unchanged, and
// an edit of its result is caught.
func TestClientReportedRecord(t *testing.T) {
	rs := chain(t, 3)
	rs[2].Result, rs[2].Action, rs[2].Detail = ResultClientReported, "file.fetch.done", "5000 bytes in 1.2s"
	if err := rs[2].Seal(rs[1].Hash); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for i := range rs {
		b, err := rs[i].MarshalLine()
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if res, err := VerifyExport(bytes.NewReader(buf.Bytes())); err != nil || !res.OK || res.Records != 3 {
		t.Fatalf("export with a client-reported record: %+v %v", res, err)
	}
	edited := strings.Replace(buf.String(), `"result":"client-reported"`, `"result":"ok"`, 1)
	if res, _ := VerifyExport(strings.NewReader(edited)); res.OK || res.BadSeq != 3 || res.Kind != Edited {
		t.Fatalf("a client-reported record passed off as dozod's own: %+v", res)
	}
	r := rs[2]
	r.Result = "trusted"
	if err := r.Seal(rs[1].Hash); err == nil {
		t.Fatal("sealed an unknown result")
	}
}
