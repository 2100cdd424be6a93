package catalog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/audit"
)

// TestAuditAppendersOnSeveralCatalogs appends from several Catalogs on one
// store at once, as several dozods on one PostgreSQL catalog will: the
// chain has every record, numbered 1..n without a gap, each committing to
// the one before, and no fork.
func TestAuditAppendersOnSeveralCatalogs(t *testing.T) {
	ctx := context.Background()
	where := store(t)
	cats := []*Catalog{openAt(t, where), openAt(t, where), openAt(t, where)}
	const goroutines, appends = 4, 10
	var wg sync.WaitGroup
	for i, c := range cats {
		for g := range goroutines {
			wg.Go(func() {
				for j := range appends {
					_, err := c.AppendAudit(ctx, audit.Record{Time: t0.Add(time.Duration(j) * time.Second), Actor: fmt.Sprintf("c%d-g%d", i, g),
						Action: "file.fetch", Object: fmt.Sprintf("dataset/DS%d", j), Result: audit.ResultOK, Status: 200})
					if err != nil {
						t.Errorf("catalog %d goroutine %d append %d: %v", i, g, j, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	want := len(cats) * goroutines * appends
	res, err := cats[1].VerifyAudit(ctx)
	if err != nil || !res.OK || res.Records != want {
		t.Fatalf("verify: %+v %v; want %d records", res, err, want)
	}
	var seqs []uint64
	perActor := map[string]int{}
	cats[2].EachAudit(ctx, func(r *audit.Record) error {
		seqs = append(seqs, r.Seq)
		perActor[r.Actor]++
		return nil
	})
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("record %d has seq %d: a gap or a fork", i, s)
		}
	}
	for a, n := range perActor {
		if n != appends {
			t.Errorf("%s has %d records, want %d", a, n, appends)
		}
	}
}

// TestConcurrentChecksHold races transactions that check, then change: two
// custodians of a dataset removed at once, from two Catalogs. Exactly one
// removal wins; the other finds itself the last custodian and changes
// nothing. (On PostgreSQL this takes SERIALIZABLE transactions: under READ
// COMMITTED both would see the other's row and both would commit.)
func TestConcurrentChecksHold(t *testing.T) {
	ctx := context.Background()
	where := store(t)
	cats := []*Catalog{openAt(t, where), openAt(t, where)}
	const datasets = 8
	for i := range datasets {
		ds := fmt.Sprintf("DS%d", i)
		mkDataset(t, cats[0], ds)
		if err := cats[0].AddMember(ctx, ds, "amy", "", RoleCustodian, "sam", t0); err != nil {
			t.Fatal(err)
		}
	}
	errs := make([][2]error, datasets)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range datasets {
		for j, u := range []string{"sam", "amy"} {
			wg.Go(func() {
				<-start
				errs[i][j] = cats[j].RemoveMember(ctx, fmt.Sprintf("DS%d", i), ByName(u), RoleCustodian)
			})
		}
	}
	close(start)
	wg.Wait()
	for i := range datasets {
		ds := fmt.Sprintf("DS%d", i)
		ms, err := cats[0].Members(ctx, ds)
		if err != nil {
			t.Fatal(err)
		}
		custodians := 0
		for _, m := range ms {
			if m.Role == RoleCustodian {
				custodians++
			}
		}
		won := 0
		for _, err := range errs[i] {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrState):
				t.Errorf("%s: %v", ds, err)
			}
		}
		if custodians != 1 || won != 1 {
			t.Errorf("%s: %d custodians left, %d removals succeeded (%v); want 1 and 1", ds, custodians, won, errs[i])
		}
	}
}

// Audit appends, one at a time and from 8 goroutines per CPU, on each backend: the
// cost of the serialised append every audited request pays.
func BenchmarkSQLiteAuditAppend(b *testing.B)    { benchmarkAuditAppend(b, 1) }
func BenchmarkSQLiteAuditAppend8(b *testing.B)   { benchmarkAuditAppend(b, 8) }
func BenchmarkPostgresAuditAppend(b *testing.B)  { benchmarkAuditAppend(b, 1) }
func BenchmarkPostgresAuditAppend8(b *testing.B) { benchmarkAuditAppend(b, 8) }

func benchmarkAuditAppend(b *testing.B, goroutines int) {
	ctx := context.Background()
	if onPostgres(b) {
		if _, err := postgresURL(); err != nil {
			b.Skip(err)
		}
	}
	c, err := Open(ctx, store(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := audit.Record{Time: t0, Actor: "sam", Action: "fetch.presign", Object: "file/f-1/dozo/v1/DS/f-1/seg-00000001/p02",
		Result: audit.ResultOK, Status: 200, Source: "192.0.2.1:5555", RequestID: "0123456789abcdef01234567"}
	b.SetParallelism(goroutines)
	b.ResetTimer()
	if goroutines == 1 {
		for b.Loop() {
			if _, err := c.AppendAudit(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.AppendAudit(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
