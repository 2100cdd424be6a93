package transfer

import (
	"slices"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

// The pieces go where dozod's upload session places them, even where
// storage.Place over the same targets would put them elsewhere.
func TestUploadWritesWhereDozodPlaces(t *testing.T) {
	e := newEnv(t)
	// A placement of its own: row r is Place's row r+1, so each segment
	// goes where Place would put the next one.
	var rows [][]string
	e.fk.placement = func(p [][]string) [][]string {
		rows = append(p[1:], p[0])
		return rows
	}
	path, _ := writeRandom(t, 3*fakePlainSeg+7)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	e.fk.mu.Lock()
	defer e.fk.mu.Unlock()
	up := e.fk.uploads[res.UploadID]
	if len(up.Committed) != 4 {
		t.Fatalf("%d segments committed", len(up.Committed))
	}
	l, _ := filestore.Layout(4, 2, fakePlainSeg)
	moved := false
	for _, seg := range up.Committed {
		var got []string
		for _, p := range seg.Pieces {
			got = append(got, p.Target)
		}
		want := rows[seg.Index%len(rows)]
		if !slices.Equal(got, want) {
			t.Errorf("segment %d on %v, dozod placed it on %v", seg.Index, got, want)
		}
		moved = moved || !slices.Equal(got, placeRows(up.Targets, l)[seg.Index%len(rows)])
	}
	if !moved {
		t.Error("the test placement is storage.Place's: it shows nothing")
	}
}

// A placement that is not well formed is refused with a clear error
// before any piece is written, and the session is aborted.
func TestUploadRefusesMalformedPlacement(t *testing.T) {
	for _, c := range []struct {
		name, want string
		bad        func([][]string) [][]string
	}{
		{"none", "carries no placement", func([][]string) [][]string { return nil }},
		{"short row", "names 5 targets, want 6", func(p [][]string) [][]string { p[2] = p[2][:5]; return p }},
		{"unknown target", "not a target of the upload", func(p [][]string) [][]string { p[0][3] = "s9-a"; return p }},
		{"twice", "two pieces on", func(p [][]string) [][]string { p[1][4] = p[1][0]; return p }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.fk.placement = c.bad
			path, _ := writeRandom(t, 2*fakePlainSeg)
			_, err := e.upload(t, path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("upload with a bad placement: %v, want %q", err, c.want)
			}
			if n := e.fk.puts.Load(); n != 0 {
				t.Errorf("%d pieces written", n)
			}
			e.fk.mu.Lock()
			defer e.fk.mu.Unlock()
			if len(e.fk.aborted) != 1 {
				t.Errorf("sessions aborted: %v", e.fk.aborted)
			}
		})
	}
}

// Distinct targets are not enough: a row with more than M pieces in one
// failure domain would lose its segment with that domain.
func TestCheckPlacementDomains(t *testing.T) {
	l := storage.Layout{K: 4, M: 2, SegmentSize: 4 << 20}
	up := &api.Upload{Targets: []api.Target{{ID: "s1-a", Domain: "s1"}, {ID: "s1-b", Domain: "s1"}, {ID: "s1-c", Domain: "s1"},
		{ID: "s2-a", Domain: "s2"}, {ID: "s3-a", Domain: "s3"}, {ID: "s3-b", Domain: "s3"}}}
	up.Placement = [][]string{{"s1-a", "s2-a", "s3-a", "s1-b", "s3-b", "s1-c"}}
	if _, err := checkPlacement(up, l); err == nil || !strings.Contains(err.Error(), `more than 2 pieces in failure domain "s1"`) {
		t.Errorf("3 pieces in one domain: %v", err)
	}
	up.Placement = [][]string{{"s1-a", "s2-a", "s3-a", "s1-b", "s3-b", "s2-a"}}
	if _, err := checkPlacement(up, l); err == nil || !strings.Contains(err.Error(), "two pieces on") {
		t.Errorf("a target twice: %v", err)
	}
	up.Placement = [][]string{{"s1-a", "s2-a", "s3-a", "s1-b", "s3-b", "s1-c"}}
	l.M = 0
	l.K = 6
	l.SegmentSize = 6 << 20
	if _, err := checkPlacement(up, l); err != nil {
		t.Errorf("without parity no domain limit applies: %v", err)
	}
}
