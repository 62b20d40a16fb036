package mysql

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/lifecycle"
)

func TestUpsertAcrossRefreshes(t *testing.T) {
	s := server(t)
	db := s.freshDB(t, "flowline_upsert")
	o := s.output("flowline_upsert")
	if err := o.Init(core.NewEnv("test", "")); err != nil {
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
	o.Lifecycle.CheckEvery = core.Duration(time.Hour)
	o.Lifecycle.Rollups = []lifecycle.Rollup{
		{After: 0, History: core.Duration(time.Hour), Primitives: []string{"src_host", "dst_host", "proto"}},
		{After: 0, History: core.Duration(24 * time.Hour), Primitives: []string{"proto"}},
	}
	if err := o.Init(core.NewEnv("test", "")); err != nil {
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

// TestCloseSpoolsAndNextStartWrites: with the database away, Close leaves
// the rows in spool files; the next start (same data directory) writes them
// once.
func TestCloseSpoolsAndNextStartWrites(t *testing.T) {
	s := server(t)
	db := s.freshDB(t, "flowline_restart")
	dataDir := t.TempDir()
	env := core.NewEnv("mysql", dataDir)
	down := s.output("flowline_restart")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down.Port = l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	down.Timeout = core.Duration(time.Second)
	if err := down.Init(env); err != nil {
		t.Fatal(err)
	}
	if err := down.Connect(context.Background()); err != nil {
		t.Fatalf("an unreachable server must not fail the start: %v", err)
	}
	bin := time.Now().Truncate(10 * time.Minute)
	recs := realisticRecords(t, 5000, 3, bin)
	for i := 0; i < len(recs); i += 500 {
		b := core.NewBatch()
		b.Records = append(b.Records[:0], recs[i:min(i+500, len(recs))]...)
		down.Write(context.Background(), b)
		b.Release()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err = down.Close(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dataDir, "mysql-mysql", "*.rows"))
	if len(files) == 0 {
		t.Fatal("no spool files after closing with the database away")
	}
	up := s.output("flowline_restart")
	if err := up.Init(core.NewEnv("mysql", dataDir)); err != nil { // a new process: a new registry
		t.Fatal(err)
	}
	if err := up.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, up, time.Minute)
	if err := up.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, p, b := sums(t, db, "acct")
	wp, wb := recSums(recs)
	if p != wp || b != wb {
		t.Fatalf("after restart: %d packets, %d bytes; want %d, %d", p, b, wp, wb)
	}
	if files, _ := filepath.Glob(filepath.Join(dataDir, "mysql-mysql", "*.rows")); len(files) != 0 {
		t.Fatalf("spool files left: %v", files)
	}
}

// TestCompactionInterruptedAndRepeated cancels passes at random points and
// repeats them: totals never change, no row is lost or counted twice.
func TestCompactionInterruptedAndRepeated(t *testing.T) {
	s := server(t)
	db := s.freshDB(t, "flowline_interrupt")
	o := s.output("flowline_interrupt")
	o.Lifecycle.CompressAfter = 0
	o.Lifecycle.Rollups = []lifecycle.Rollup{{History: core.Duration(time.Hour), Primitives: []string{"src_host", "proto"}}}
	if err := o.Init(core.NewEnv("test", "")); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	bin := time.Now().Truncate(10 * time.Minute)
	recs := realisticRecords(t, 60_000, 4, bin)
	writeAll(t, o, recs, 5000)
	wp, wb := recSums(recs)
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(5+i*7)*time.Millisecond)
		o.Compact(ctx, time.Now(), *o.policy)
		cancel()
		for _, table := range []string{"acct_all"} {
			if _, p, b := sums(t, db, table); p != wp || b != wb {
				t.Fatalf("after interrupted pass %d: %s holds %d packets, %d bytes; want %d, %d", i, table, p, b, wp, wb)
			}
		}
	}
	if _, err := o.Compact(context.Background(), time.Now(), *o.policy); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"acct_all", "acct_archive", "acct_1h"} {
		if _, p, b := sums(t, db, table); p != wp || b != wb {
			t.Fatalf("%s holds %d packets, %d bytes; want %d, %d", table, p, b, wp, wb)
		}
	}
}

// TestLoadDataRefusedFallsBack: a server with local_infile = OFF refuses LOAD
// DATA LOCAL; the output switches to multi-row INSERTs and loses nothing.
func TestLoadDataRefusedFallsBack(t *testing.T) {
	s := server(t)
	root := s.open(t, "")
	var was int
	if err := root.QueryRow("SELECT @@GLOBAL.local_infile").Scan(&was); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Exec("SET GLOBAL local_infile = 0"); err != nil {
		t.Skipf("cannot switch local_infile: %v", err)
	}
	t.Cleanup(func() { root.Exec(fmt.Sprintf("SET GLOBAL local_infile = %d", was)) })
	db := s.freshDB(t, "flowline_noload")
	o := s.output("flowline_noload")
	if err := o.Init(core.NewEnv("test", "")); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := realisticRecords(t, 5000, 8, time.Now().Truncate(10*time.Minute))
	writeAll(t, o, recs, 1000)
	o.Close(context.Background())
	if !o.noLoad.Load() {
		t.Fatal("LOAD DATA LOCAL was not refused: the test proves nothing")
	}
	_, p, b := sums(t, db, "acct")
	if wp, wb := recSums(recs); p != wp || b != wb {
		t.Fatalf("%d packets, %d bytes; want %d, %d", p, b, wp, wb)
	}
}

// TestDeleteAfter: rows older than delete_after leave the hot table and the
// archive; the rollup tier, with a delete_after of its own, keeps its totals.
func TestDeleteAfter(t *testing.T) {
	s := server(t)
	db := s.freshDB(t, "flowline_delete")
	o := s.output("flowline_delete")
	o.Lifecycle.CompressAfter = core.Duration(24 * time.Hour)
	o.Lifecycle.DeleteAfter = core.Duration(48 * time.Hour)
	o.Lifecycle.Rollups = []lifecycle.Rollup{{After: core.Duration(24 * time.Hour), History: core.Duration(24 * time.Hour),
		Primitives: []string{"proto"}, DeleteAfter: core.Duration(30 * 24 * time.Hour)}}
	if err := o.Init(core.NewEnv("test", "")); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	now := time.Now()
	old := realisticRecords(t, 3000, 9, now.Add(-72*time.Hour).Truncate(time.Hour))
	mid := realisticRecords(t, 3000, 10, now.Add(-30*time.Hour).Truncate(time.Hour))
	fresh := realisticRecords(t, 3000, 11, now.Add(-time.Hour).Truncate(time.Hour))
	writeAll(t, o, old, 1000)
	writeAll(t, o, mid, 1000)
	writeAll(t, o, fresh, 1000)
	// The first pass archives and rolls up the old and the middle bins, then
	// deletes the old detail.
	rep, err := o.Compact(context.Background(), now, *o.policy)
	if err != nil {
		t.Fatal(err)
	}
	op, ob := recSums(old)
	mp, mb := recSums(mid)
	fp, fb := recSums(fresh)
	if _, p, b := sums(t, db, "acct_all"); p != mp+fp || b != mb+fb {
		t.Fatalf("acct_all after delete: %d packets, %d bytes; want %d, %d (%s)", p, b, mp+fp, mb+fb, rep)
	}
	if n, p, _ := sums(t, db, "acct"); p != fp || n != uint64(len(fresh)) {
		t.Fatalf("hot table: %d rows, %d packets; want the fresh bin only", n, p)
	}
	if _, p, b := sums(t, db, "acct_1d"); p != op+mp || b != ob+mb {
		t.Fatalf("acct_1d: %d packets, %d bytes; want the old and middle bins %d, %d", p, b, op+mp, ob+mb)
	}
	if rep.DeletedRows != int64(len(old)) {
		t.Fatalf("report says %d rows deleted, want %d", rep.DeletedRows, len(old))
	}
}

// TestDontTryUpdate: insert-only writes; a second refresh of the same bin
// falls back to the update instead of failing or losing rows.
func TestDontTryUpdate(t *testing.T) {
	s := server(t)
	for _, load := range []bool{true, false} {
		db := s.freshDB(t, "flowline_insert_only")
		o := s.output("flowline_insert_only")
		o.DontTryUpdate, o.LoadData = true, load
		if err := o.Init(core.NewEnv("test", "")); err != nil {
			t.Fatal(err)
		}
		if err := o.Connect(context.Background()); err != nil {
			t.Fatal(err)
		}
		recs := realisticRecords(t, 5000, 12, time.Now().Truncate(10*time.Minute))
		writeAll(t, o, recs, 1000)
		for i := range recs {
			recs[i].StampUpdated += int64(time.Minute)
		}
		writeAll(t, o, recs, 1000)
		o.Close(context.Background())
		n, p, b := sums(t, db, "acct")
		wp, wb := recSums(recs)
		if n != uint64(len(recs)) || p != 2*wp || b != 2*wb {
			t.Fatalf("load_data=%v: %d rows, %d packets, %d bytes; want %d, %d, %d", load, n, p, b, len(recs), 2*wp, 2*wb)
		}
	}
}

// TestLedgerAnswersAfterLostCommit: a transaction that committed leaves its
// batch number in the ledger, which is what the retry after a lost answer
// reads before writing again.
func TestLedgerAnswersAfterLostCommit(t *testing.T) {
	s := server(t)
	db := s.freshDB(t, "flowline_ledger_test")
	o := s.output("flowline_ledger_test")
	if err := o.Init(core.NewEnv("test", "")); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	ctx := context.Background()
	if done, err := o.ledgerHas(ctx, 1); err != nil || done {
		t.Fatalf("empty ledger: done %v, %v", done, err)
	}
	rows := testRows(50, time.Now().Unix())
	for i := range rows {
		rows[i].Inserted = time.Now().Truncate(time.Hour).Unix()
	}
	group := []*chunk{{Seq: 41, Items: rows[:25], N: 25}, {Seq: 42, Items: rows[25:], N: 25}}
	if err := o.writeGroup(ctx, group, 42); err != nil {
		t.Fatal(err)
	}
	if done, err := o.ledgerHas(ctx, 42); err != nil || !done {
		t.Fatalf("after the commit the ledger must hold 42: %v, %v", done, err)
	}
	if done, _ := o.ledgerHas(ctx, 43); done {
		t.Fatal("the ledger claims a batch that was never written")
	}
	if n, _, _ := sums(t, db, "acct"); n != 50 {
		t.Fatalf("%d rows, want 50", n)
	}
}
