package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/audit"
)

// TestAuditGroupCommitConcurrent appends from many goroutines at once, so
// records share transactions: the chain verifies, holds every record
// numbered 1..n without a gap, and each caller got a distinct seq whose
// stored record is the one it appended.
func TestAuditGroupCommitConcurrent(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	const goroutines, appends = 64, 50
	got := make([][]*audit.Record, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for j := range appends {
				s, err := c.AppendAudit(ctx, audit.Record{Time: t0.Add(time.Duration(j) * time.Second), Actor: fmt.Sprintf("g%d", g),
					Action: "file.fetch", Object: "dataset/DS", Result: audit.ResultOK, Status: 200, Detail: fmt.Sprint(j)})
				if err != nil {
					t.Errorf("goroutine %d append %d: %v", g, j, err)
					return
				}
				got[g] = append(got[g], s)
			}
		})
	}
	wg.Wait()
	const want = goroutines * appends
	res, err := c.VerifyAudit(ctx)
	if err != nil || !res.OK || res.Records != want {
		t.Fatalf("verify: %+v %v; want %d records", res, err, want)
	}
	stored := map[uint64]audit.Record{}
	next := uint64(1)
	c.EachAudit(ctx, func(r *audit.Record) error {
		if r.Seq != next {
			t.Fatalf("record %d has seq %d: a gap or a fork", next, r.Seq)
		}
		next++
		stored[r.Seq] = *r
		return nil
	})
	seen := map[uint64]bool{}
	for g, rs := range got {
		for j, s := range rs {
			if seen[s.Seq] {
				t.Fatalf("seq %d returned twice", s.Seq)
			}
			seen[s.Seq] = true
			r := stored[s.Seq]
			if r.Actor != fmt.Sprintf("g%d", g) || r.Detail != fmt.Sprint(j) || r.Hash != s.Hash || r.PrevHash != s.PrevHash {
				t.Fatalf("goroutine %d append %d got seq %d, which stores %s/%s", g, j, s.Seq, r.Actor, r.Detail)
			}
		}
	}
	if len(seen) != want {
		t.Fatalf("%d distinct seqs returned, want %d", len(seen), want)
	}
}

// poisonAudit makes the database refuse to store an audit record whose
// actor is "poison": a real failure inside the appending transaction.
func poisonAudit(t *testing.T, c *Catalog) {
	stmts := []string{`CREATE TRIGGER audit_poison BEFORE INSERT ON audit WHEN NEW.actor = 'poison'
		BEGIN SELECT RAISE(ABORT, 'poisoned record'); END`}
	if onPostgres(t) {
		stmts = []string{`CREATE FUNCTION audit_poison() RETURNS trigger LANGUAGE plpgsql AS
			'BEGIN IF NEW.actor = ''poison'' THEN RAISE EXCEPTION ''poisoned record''; END IF; RETURN NEW; END'`,
			`CREATE TRIGGER audit_poison BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_poison()`}
	}
	for _, s := range stmts {
		if _, err := c.db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuditGroupCommitFailureFailsBatch queues a batch whose transaction
// fails on one record: every waiter of the batch gets the error, nothing
// of the batch is in the log, and the next append continues the chain. A
// record that fails validation fails alone.
func TestAuditGroupCommitFailureFailsBatch(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	poisonAudit(t, c)
	rec := func(actor, result string) audit.Record {
		return audit.Record{Time: t0, Actor: actor, Action: "a", Object: "o", Result: result}
	}
	if _, err := c.AppendAudit(ctx, rec("first", audit.ResultOK)); err != nil {
		t.Fatal(err)
	}
	// runBatch queues recs as one batch and commits it, as the committer
	// does when they arrive during another batch's commit.
	runBatch := func(recs ...audit.Record) []*pendingAudit {
		q := &auditQueue{}
		for _, r := range recs {
			q.pending = append(q.pending, &pendingAudit{r: r, done: make(chan struct{})})
		}
		ps := slices.Clone(q.pending)
		c.auditMu.Lock()
		c.auditQ = q
		c.auditMu.Unlock()
		c.commitAuditQueue(ctx, q)
		for _, p := range ps {
			<-p.done
		}
		return ps
	}
	for i, p := range runBatch(rec("a", audit.ResultOK), rec("poison", audit.ResultOK), rec("b", audit.ResultOK)) {
		if p.err == nil || !strings.Contains(p.err.Error(), "poisoned record") || p.sealed != nil {
			t.Errorf("waiter %d: %v %v, want the batch's error", i, p.sealed, p.err)
		}
	}
	if seq, _, err := c.AuditHead(ctx); err != nil || seq != 1 {
		t.Fatalf("head after the failed batch: %d %v, want 1", seq, err)
	}
	ps := runBatch(rec("c", audit.ResultOK), rec("bad", "maybe"), rec("d", audit.ResultOK))
	if ps[1].err == nil || ps[0].err != nil || ps[2].err != nil || ps[0].sealed.Seq != 2 || ps[2].sealed.Seq != 3 {
		t.Fatalf("batch with an invalid record: %v %v %v", ps[0].err, ps[1].err, ps[2].err)
	}
	if s, err := c.AppendAudit(ctx, rec("last", audit.ResultOK)); err != nil || s.Seq != 4 {
		t.Fatalf("append after: %v %v, want seq 4", s, err)
	}
	res, err := c.VerifyAudit(ctx)
	if err != nil || !res.OK || res.Records != 4 {
		t.Fatalf("verify: %+v %v", res, err)
	}
	c.EachAudit(ctx, func(r *audit.Record) error {
		if r.Actor != []string{"", "first", "c", "d", "last"}[r.Seq] {
			t.Errorf("seq %d is %s", r.Seq, r.Actor)
		}
		return nil
	})
	// The committer drops the queue once it finds it empty, just after
	// releasing the last waiter: give it a moment.
	left := true
	for i := 0; i < 200 && left; i++ {
		c.auditMu.Lock()
		left = c.auditQ != nil
		c.auditMu.Unlock()
		if left {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if left {
		t.Error("an audit queue was left behind")
	}
}

// TestAuditGroupCommitFailureConcurrent appends from many goroutines, some
// of them records the database refuses: each caller gets either an error
// or a seq, the log holds exactly the records whose callers got a seq,
// and the chain verifies.
func TestAuditGroupCommitFailureConcurrent(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	poisonAudit(t, c)
	const goroutines, appends = 16, 20
	var mu sync.Mutex
	ok := map[uint64]string{}
	failed := 0
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for j := range appends {
				actor := fmt.Sprintf("g%d-%d", g, j)
				if j%7 == 3 {
					actor = "poison"
				}
				s, err := c.AppendAudit(ctx, audit.Record{Time: t0, Actor: actor, Action: "a", Object: "o", Result: audit.ResultOK})
				mu.Lock()
				if err != nil {
					failed++
				} else {
					ok[s.Seq] = actor
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed < goroutines*3 {
		t.Fatalf("%d appends failed, want at least every poisoned one (%d)", failed, goroutines*3)
	}
	res, err := c.VerifyAudit(ctx)
	if err != nil || !res.OK || res.Records != len(ok) || len(ok)+failed != goroutines*appends {
		t.Fatalf("verify: %+v %v; %d succeeded, %d failed", res, err, len(ok), failed)
	}
	c.EachAudit(ctx, func(r *audit.Record) error {
		if ok[r.Seq] != r.Actor {
			t.Errorf("seq %d stores %s, its caller got %q", r.Seq, r.Actor, ok[r.Seq])
		}
		return nil
	})
}

// TestAuditGroupCommitCancelWhileQueued: a caller whose context ends while
// its record waits for a batch gets the error, and its record leaves the
// queue, so it is never appended.
func TestAuditGroupCommitCancelWhileQueued(t *testing.T) {
	c := open(t)
	// A queue with no committer draining it: the record stays queued.
	q := &auditQueue{}
	c.auditMu.Lock()
	c.auditQ = q
	c.auditMu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.AppendAudit(ctx, audit.Record{Time: t0, Actor: "sam", Action: "a", Object: "o", Result: audit.ResultOK})
	c.auditMu.Lock()
	left := len(q.pending)
	c.auditQ = nil
	c.auditMu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "context canceled") || left != 0 {
		t.Fatalf("cancelled while queued: %v, %d left in the queue", err, left)
	}
	if s, err := c.AppendAudit(context.Background(), audit.Record{Time: t0, Actor: "sam", Action: "a", Object: "o", Result: audit.ResultOK}); err != nil || s.Seq != 1 {
		t.Fatalf("next append: %v %v, want seq 1", s, err)
	}
}
