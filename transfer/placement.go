package transfer

import (
	"errors"
	"fmt"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// placement is dozod's placement of an upload's pieces
// (api.Upload.Placement), checked: row s % len(p) lists, in piece order,
// the indexes in the upload's Targets of segment s's targets. The client
// writes each piece where dozod says, never where it would compute:
// dozod presigns a piece only on its place.
type placement [][]int

// checkPlacement returns up's placement if it is well formed for layout l:
// at least one row; each row names l.Shards() distinct targets of
// up.Targets; and, with parity, no failure domain holds more than l.M
// pieces of a segment, so losing one domain never loses a segment. Any
// other answer is an error naming what is wrong, and nothing is written.
func checkPlacement(up *api.Upload, l storage.Layout) (placement, error) {
	if len(up.Placement) == 0 {
		return nil, errors.New("dozod's upload session carries no placement (is dozod older than this client?)")
	}
	if len(up.Placement) > storage.MaxSegments {
		return nil, fmt.Errorf("dozod's placement has %d rows", len(up.Placement))
	}
	index := make(map[string]int, len(up.Targets))
	for i, t := range up.Targets {
		if _, dup := index[t.ID]; dup {
			return nil, fmt.Errorf("dozod lists target %q twice", t.ID)
		}
		index[t.ID] = i
	}
	n := l.Shards()
	p := make(placement, len(up.Placement))
	for r, row := range up.Placement {
		if len(row) != n {
			return nil, fmt.Errorf("dozod's placement row %d names %d targets, want %d", r, len(row), n)
		}
		p[r] = make([]int, n)
		seen := make(map[int]bool, n)
		domains := map[string]int{}
		for piece, id := range row {
			i, ok := index[id]
			if !ok {
				return nil, fmt.Errorf("dozod's placement row %d puts piece %d on %q, not a target of the upload", r, piece, id)
			}
			if seen[i] {
				return nil, fmt.Errorf("dozod's placement row %d puts two pieces on %q", r, id)
			}
			seen[i] = true
			d := up.Targets[i].Domain
			if domains[d]++; l.M > 0 && domains[d] > l.M {
				return nil, fmt.Errorf("dozod's placement row %d puts more than %d pieces in failure domain %q", r, l.M, d)
			}
			p[r][piece] = i
		}
	}
	return p, nil
}

// row returns the indexes in the upload's Targets of segment seg's pieces.
func (p placement) row(seg int) []int { return p[seg%len(p)] }

// on returns segment seg's targets among ts, the upload's Targets in
// order, as storage.WriterOptions.Placement wants them.
func (p placement) on(ts []storage.Target) func(seg int) ([]storage.Target, error) {
	return func(seg int) ([]storage.Target, error) {
		if seg < 0 {
			return nil, fmt.Errorf("negative segment %d", seg)
		}
		row := p.row(seg)
		out := make([]storage.Target, len(row))
		for i, t := range row {
			out[i] = ts[t]
		}
		return out, nil
	}
}
