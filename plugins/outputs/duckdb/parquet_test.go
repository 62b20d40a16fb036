package duckdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// TestParquetEncodings writes columns of edge values through both
// encodings (delta, dictionary) and reads every value back with DuckDB.
func TestParquetEncodings(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 127, 128, 129, 1000, 70001} {
		cols := []pqColumn{
			{name: "u64", phys: pqInt64, conv: pqConvUint64, size: 8},
			{name: "u32", phys: pqInt32, conv: pqConvUint32, size: 4, dict: true},
			{name: "u16", phys: pqInt32, conv: pqConvUint16, size: 2},
			{name: "u8", phys: pqInt32, conv: pqConvUint8, size: 1, dict: true},
			{name: "few", phys: pqInt64, conv: pqConvUint64, size: 8, dict: true},
			{name: "opt", phys: pqInt64, conv: pqConvUint64, size: 8, optional: true, dict: true},
			{name: "sparse", phys: pqInt64, conv: pqConvUint64, size: 8, optional: true},
		}
		type row struct {
			u64         uint64
			u32         uint32
			u16         uint16
			u8          uint8
			few         uint64
			opt, sparse *uint64
		}
		want := make([]row, n)
		for i := range want {
			r := &want[i]
			switch i % 5 {
			case 0:
				r.u64, r.u32 = 0, 0
			case 1:
				r.u64, r.u32 = ^uint64(0), ^uint32(0)
			default:
				r.u64, r.u32 = rng.Uint64(), rng.Uint32()
			}
			r.u16, r.u8 = uint16(rng.Uint32()), uint8(rng.Uint32())
			r.few = []uint64{0xffff0a000001, 0xffff0a000002, 1 << 63}[rng.IntN(3)]
			cols[0].put64(r.u64)
			cols[1].put32(r.u32)
			cols[2].put16(r.u16)
			cols[3].put8(r.u8)
			cols[4].put64(r.few)
			if i%7 == 3 {
				cols[5].null()
			} else {
				v := r.few
				r.opt = &v
				cols[5].putOpt(v)
			}
			switch {
			case i%11 == 5:
				cols[6].null()
			case i > n/2 && i%3 == 0:
				v := uint64(i) << 40
				r.sparse = &v
				cols[6].putSparse(v)
			default:
				v := uint64(0)
				r.sparse = &v
				cols[6].putSparse(0)
			}
		}
		// Twice: the second time the dictionary columns use the winner
		// of the first comparison without comparing.
		for round := range 2 {
			path := filepath.Join(dir, fmt.Sprintf("t%d_%d.parquet", n, round))
			if err := writeParquetFile(path, cols, n); err != nil {
				t.Fatal(err)
			}
			res, err := s.Query(context.Background(), fmt.Sprintf("SELECT u64, u32, u16, u8, few, opt, sparse FROM read_parquet('%s')", path))
			if err != nil {
				t.Fatalf("%d rows: %v", n, err)
			}
			if len(res.Rows) != n {
				t.Fatalf("%d rows read back as %d", n, len(res.Rows))
			}
			for i, got := range res.Rows {
				w := want[i]
				ptr := func(p *uint64) any {
					if p == nil {
						return nil
					}
					return *p
				}
				exp := []any{w.u64, w.u32, w.u16, w.u8, w.few, ptr(w.opt), ptr(w.sparse)}
				for j := range exp {
					if got[j] != exp[j] {
						t.Fatalf("%d rows, round %d, row %d: %s = %v, want %v", n, round, i, res.Columns[j], got[j], exp[j])
					}
				}
			}
		}
	}
}
