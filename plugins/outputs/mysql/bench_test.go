package mysql

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
)

// BenchmarkUpsert measures rows per second into MariaDB with pmacct's upsert
// semantics: realistic flowgen traffic aggregated by the 5-tuple, written as
// a first refresh (inserts) and a second refresh of the same bin (updates).
func BenchmarkUpsert(b *testing.B) {
	s := server(b)
	bin := time.Unix(1_700_000_400, 0)
	recs := realisticRecords(b, 300_000, 5, bin)
	for _, bc := range []struct {
		layoutName string
		load       bool
	}{{"optimize_clauses", true}, {"optimize_clauses", false}, {"v9_full", true}, {"v9_full", false}} {
		layoutName := bc.layoutName
		mode := map[bool]string{true: "load_data", false: "multi_values"}[bc.load]
		b.Run(layoutName+"/"+mode, func(b *testing.B) {
			var total int
			var took time.Duration
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("flowline_bench_%s", layoutName)
				s.freshDB(b, name)
				o := s.output(name)
				if layoutName == "v9_full" {
					o.OptimizeClauses, o.Primitives = false, nil
				}
				o.LoadData = bc.load
				if err := o.Init(core.NewEnv("test", "")); err != nil {
					b.Fatal(err)
				}
				if err := o.Connect(context.Background()); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for refresh := 0; refresh < 2; refresh++ {
					for j := range recs {
						recs[j].StampUpdated = bin.Add(time.Duration(refresh+1) * 30 * time.Second).UnixNano()
					}
					writeAll(b, o, recs, 10_000)
				}
				took += time.Since(start)
				total += 2 * len(recs)
				o.Close(context.Background())
			}
			b.ReportMetric(float64(total)/took.Seconds(), "rows/s")
			b.ReportMetric(float64(len(recs)), "distinct_keys")
		})
	}
}
