package main

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/dozo-vault/dozo/storage"
)

// Segments degraded at once from many goroutines give one notice, naming
// one segment's failures, and the report gets every failed target, sorted
// and each once.
func TestDegradedStorageOneNoticeAllTargets(t *testing.T) {
	var (
		mu      sync.Mutex
		notices []string
	)
	d := &degradedStorage{say: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		notices = append(notices, fmt.Sprintf(format, args...))
	}}
	targets := []string{"s3", "s1", "s5", "s2"}
	var wg sync.WaitGroup
	for seg := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.segment(seg, []storage.PieceFailure{
				{Piece: 1, Target: targets[seg%len(targets)], Reason: storage.ReasonMissing},
				{Piece: 4, Target: "s6", Reason: storage.ReasonCorrupt},
			})
		}()
	}
	wg.Wait()
	if len(notices) != 1 {
		t.Fatalf("%d notices, want 1: %q", len(notices), notices)
	}
	var seg int
	var first string
	if _, err := fmt.Sscanf(notices[0], "storage is degraded (segment %d: %s", &seg, &first); err != nil {
		t.Fatalf("notice %q: %v", notices[0], err)
	}
	want := fmt.Sprintf("storage is degraded (segment %d: %s missing, s6 corrupt); the data is rebuilt from parity and intact, but tell the operators so they can repair it", seg, targets[seg%len(targets)])
	if notices[0] != want {
		t.Errorf("notice\n%q, want\n%q", notices[0], want)
	}
	if got, want := d.targets(), []string{"s1", "s2", "s3", "s5", "s6"}; !slices.Equal(got, want) {
		t.Errorf("targets %q, want %q", got, want)
	}
}

// A file of a batch is named at the start of its notice; with --debug
// each failure is given in full.
func TestDegradedStorageNotice(t *testing.T) {
	fails := []storage.PieceFailure{{Piece: 2, Target: "s4", Reason: storage.ReasonUnreachable, Err: errors.New("connection refused")}}
	for _, tc := range []struct {
		d    *degradedStorage
		want string
	}{
		{&degradedStorage{}, "storage is degraded (segment 7: s4 unreachable); "},
		{&degradedStorage{debug: true}, "storage is degraded (segment 7: piece 2 on s4: unreachable (connection refused)); "},
		{&degradedStorage{dataset: "JGAD000001", name: "lane1/S1.fq.gz"}, "JGAD000001/lane1/S1.fq.gz: storage is degraded (segment 7: s4 unreachable); "},
	} {
		var got []string
		tc.d.say = func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }
		tc.d.segment(7, fails)
		tc.d.segment(8, fails)
		const rest = "the data is rebuilt from parity and intact, but tell the operators so they can repair it"
		if len(got) != 1 || got[0] != tc.want+rest {
			t.Errorf("notices %q, want [%q]", got, tc.want+rest)
		}
	}
}

// With no degraded segment the report's list is empty, not nil: the JSON
// says [], not null.
func TestDegradedStorageNoneIsEmpty(t *testing.T) {
	var d degradedStorage
	if got := d.targets(); got == nil || len(got) != 0 {
		t.Errorf("targets %#v, want []string{}", got)
	}
}
