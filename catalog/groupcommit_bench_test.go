package catalog

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dozo-vault/dozo/audit"
)

// The group-commit benchmarks append from 1, 16 and 64 goroutines, with
// one transaction per record ("alone", the append before group commit)
// and with group commit ("group"), and report appends per second.
func BenchmarkSQLiteAuditGroupCommit(b *testing.B)   { benchmarkAuditGroupCommit(b) }
func BenchmarkPostgresAuditGroupCommit(b *testing.B) { benchmarkAuditGroupCommit(b) }

func benchmarkAuditGroupCommit(b *testing.B) {
	if onPostgres(b) {
		if _, err := postgresURL(); err != nil {
			b.Skip(err)
		}
	}
	for _, mode := range []string{"alone", "group"} {
		for _, n := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				ctx := context.Background()
				c, err := Open(ctx, store(b))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				appendOne := c.AppendAudit
				if mode == "alone" {
					appendOne = c.appendAuditAlone
				}
				r := audit.Record{Time: t0, Actor: "sam", Action: "fetch.presign", Object: "file/f-1/dozo/v1/DS/f-1/seg-00000001/p02",
					Result: audit.ResultOK, Status: 200, Source: "192.0.2.1:5555", RequestID: "0123456789abcdef01234567"}
				var left atomic.Int64
				left.Store(int64(b.N))
				b.ResetTimer()
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							if _, err := appendOne(ctx, r); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			})
		}
	}
}
