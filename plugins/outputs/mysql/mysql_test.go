package mysql

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/flowline/flowline/core/config"
	"github.com/flowline/flowline/core/lifecycle"
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
	bin := time.Now().Truncate(10 * time.Minute)
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

func TestLifecycleMovesEverything(t *testing.T) {
	s := server(t)
	db := s.freshDB(t, "flowline_lifecycle")
	o := s.output("flowline_lifecycle")
	o.Lifecycle.CompressAfter = 0
	o.Lifecycle.CheckEvery = config.Duration(time.Hour)
	o.Lifecycle.Rollups = []lifecycle.Rollup{
		{After: 0, History: config.Duration(time.Hour), Primitives: []string{"src_host", "dst_host", "proto"}},
		{After: 0, History: config.Duration(24 * time.Hour), Primitives: []string{"proto"}},
	}
	if err := o.Init(nil); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	bin := time.Now().Truncate(10 * time.Minute)
	recs := realisticRecords(t, 30_000, 2, bin)
	writeAll(t, o, recs, 1000)
	wp, wb := recSums(recs)
	rep, err := o.Compact(context.Background(), time.Now(), *o.policy)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pass: %s", rep)
	// A late refresh of the archived bin, then another pass: rolled up below
	// the watermark in the same move.
	writeAll(t, o, recs[:100], 100)
	lp, lb := recSums(recs[:100])
	wp, wb = wp+lp, wb+lb
	if rep, err = o.Compact(context.Background(), time.Now(), *o.policy); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := sums(t, db, "acct"); n != 0 {
		t.Fatalf("acct holds %d rows after compress_after = 0s", n)
	}
	if n, p, b := sums(t, db, "acct_archive"); n != uint64(len(recs)) || p != wp || b != wb {
		t.Fatalf("archive: %d rows, %d packets, %d bytes; want %d, %d, %d", n, p, b, len(recs), wp, wb)
	}
	for _, table := range []string{"acct_all", "acct_1h", "acct_1d"} {
		if _, p, b := sums(t, db, table); p != wp || b != wb {
			t.Fatalf("%s: %d packets, %d bytes; want %d, %d", table, p, b, wp, wb)
		}
	}
	// The view shows archived rows in acct's form.
	var ip, proto string
	if err := db.QueryRow("SELECT ip_src, ip_proto FROM acct_all LIMIT 1").Scan(&ip, &proto); err != nil {
		t.Fatal(err)
	}
	if _, err := netip.ParseAddr(ip); err != nil || proto == "" {
		t.Fatalf("acct_all row: ip_src %q, ip_proto %q", ip, proto)
	}
}
