package mysql

import (
	"context"
	"testing"
	"time"
)

func TestUpsertAcrossRefreshes(t *testing.T) {
	s := server(t)
	db := s.freshDB(t, "flowline_upsert")
	o := s.output("flowline_upsert")
	if err := o.Init(nil); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	bin := time.Unix(1_700_000_400, 0)
	recs := realisticRecords(t, 20_000, 1, bin)
	for refresh := 0; refresh < 3; refresh++ {
		for i := range recs {
			recs[i].StampUpdated = bin.Add(time.Duration(refresh+1) * 30 * time.Second).UnixNano()
		}
		writeAll(t, o, recs, 1000)
	}
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, pkts, bytes := sums(t, db, "acct")
	wp, wb := recSums(recs)
	if rows != uint64(len(recs)) || pkts != 3*wp || bytes != 3*wb {
		t.Fatalf("acct holds %d rows, %d packets, %d bytes; want %d rows, %d, %d", rows, pkts, bytes, len(recs), 3*wp, 3*wb)
	}
}
