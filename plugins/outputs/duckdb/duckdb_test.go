package duckdb

import (
	"context"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/lifecycle"
	"github.com/flowline/flowline/core/metrics"
)

var ctx = context.Background()

// t0 is a round hour, so partitions are easy to reason about.
var t0 = time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)

const fiveTuple = core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldTCPFlags | core.FieldProto

// aggRecords makes n aggregated 5-tuple records in the 1m bin at bin.
func aggRecords(n int, bin time.Time, seed int) []core.Record {
	recs := make([]core.Record, n)
	for i := range recs {
		k := seed*1_000_003 + i
		r := &recs[i]
		r.SrcAddr = netip.AddrFrom4([4]byte{10, 1, byte(k >> 8), byte(k)})
		r.DstAddr = netip.AddrFrom4([4]byte{172, 16, 0, byte(k % 50)})
		if i%10 == 9 {
			r.SrcAddr = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x:%x", k>>16, k&0xffff))
			r.DstAddr = netip.MustParseAddr("2001:db8:ff::1")
		}
		r.SrcPort = uint16(32768 + k%1000)
		r.DstPort = 443
		r.Proto = 6
		r.TCPFlags = 0x1b
		r.Packets = uint64(1 + k%17)
		r.Bytes = r.Packets * 100
		r.Flows = 1 + uint64(k%3)
		r.StampInserted = bin.UnixNano()
		r.StampUpdated = bin.Add(time.Minute).UnixNano()
		r.Present = fiveTuple | core.FieldPackets | core.FieldBytes | core.FieldStamps
	}
	return recs
}

type totals struct{ rows, packets, bytes, flows uint64 }

func sumRecs(recs []core.Record) totals {
	var t totals
	for _, r := range recs {
		t.rows++
		t.packets += r.Packets
		t.bytes += r.Bytes
		t.flows += max(r.Flows, 1)
	}
	return t
}

func (t *totals) add(o totals) {
	t.rows += o.rows
	t.packets += o.packets
	t.bytes += o.bytes
	t.flows += o.flows
}

func openTest(t testing.TB, dir string, rollups ...lifecycle.Rollup) *Store {
	t.Helper()
	s, err := Open(ctx, Options{Path: filepath.Join(dir, "flowline.duckdb"), Archive: filepath.Join(dir, "archive"), Rollups: rollups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func write(t *testing.T, s *Store, recs []core.Record) {
	t.Helper()
	n, err := s.Write(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(recs) {
		t.Fatalf("wrote %d of %d", n, len(recs))
	}
}

func toUint(t *testing.T, v any) uint64 {
	t.Helper()
	switch x := v.(type) {
	case *big.Int:
		return x.Uint64()
	case uint64:
		return x
	case int64:
		return uint64(x)
	case nil:
		return 0
	}
	t.Fatalf("unexpected %T %v", v, v)
	return 0
}

// sums reads count, packets, bytes, flows from a view or table.
func sums(t *testing.T, s *Store, from string) totals {
	t.Helper()
	res, err := s.Query(ctx, "SELECT count(*), sum(packets), sum(bytes), sum(flows) FROM "+from)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Rows[0]
	return totals{toUint(t, r[0]), toUint(t, r[1]), toUint(t, r[2]), toUint(t, r[3])}
}

func policy(compressAfter, deleteAfter time.Duration, rollups ...lifecycle.Rollup) lifecycle.Policy {
	p := lifecycle.DefaultPolicy()
	p.CompressAfter = core.Duration(compressAfter)
	p.DeleteAfter = core.Duration(deleteAfter)
	p.Rollups = rollups
	return p
}

func TestAppendTypesAndTotals(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	recs := aggRecords(5000, t0, 1)
	write(t, s, recs)
	want := sumRecs(recs)
	if got := sums(t, s, "flows"); got != want {
		t.Fatalf("flows: %+v, want %+v", got, want)
	}
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("flows_all: %+v, want %+v", got, want)
	}
	res, err := s.Query(ctx, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'flows' ORDER BY ordinal_position")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Rows {
		got = append(got, fmt.Sprint(r[0], " ", r[1]))
	}
	wantCols := "stamp_inserted TIMESTAMP,stamp_updated TIMESTAMP,src_host UHUGEINT,dst_host UHUGEINT,src_port USMALLINT,dst_port USMALLINT,tcpflags UTINYINT,proto UTINYINT,packets UBIGINT,bytes UBIGINT,flows UBIGINT"
	if strings.Join(got, ",") != wantCols {
		t.Fatalf("columns:\n%s\nwant\n%s", strings.Join(got, ","), wantCols)
	}
	check := func(from string) {
		t.Helper()
		for _, r := range []core.Record{recs[2], recs[9]} {
			filter := fmt.Sprintf("src_host = ipv4('%s')", r.SrcAddr)
			if r.SrcAddr.Is6() {
				b := r.SrcAddr.As16()
				filter = fmt.Sprintf("src_host = %s::UHUGEINT", new(big.Int).SetBytes(b[:]))
			}
			res, err := s.Query(ctx, fmt.Sprintf("SELECT src_host, dst_host, src_port, dst_port, proto, tcpflags, packets, stamp_inserted FROM %s WHERE %s AND src_port = %d", from, filter, r.SrcPort))
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprint([]any{r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, r.Proto, r.TCPFlags, r.Packets, "2026-11-28 03:00:00"})
			if len(res.Rows) != 1 || fmt.Sprint(res.Rows[0]) != want {
				t.Fatalf("%s rows: %v, want %s", from, res.Rows, want)
			}
		}
	}
	check("flows")
	// The same rows from the archive (addresses split into halves and joined).
	if _, err := s.Compact(ctx, t0.Add(time.Hour), policy(0, 0)); err != nil {
		t.Fatal(err)
	}
	check("flows_all")
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("flows_all after compaction: %+v, want %+v", got, want)
	}
	if _, err := s.Query(ctx, "DELETE FROM flows"); err == nil {
		t.Fatal("a DELETE went through Query")
	}
	if _, err := s.Query(ctx, "SELECT 1; DROP TABLE flows"); err == nil {
		t.Fatal("two statements went through Query")
	}
}

func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	write(t, s, aggRecords(100, t0, 1))
	bad := aggRecords(100, t0, 2)
	bad[50].Present = core.FieldSrcAddr | core.FieldStamps // another primitive set inside one batch
	if _, err := s.Write(ctx, bad); err == nil {
		t.Fatal("mixed batch accepted")
	}
	if got := sums(t, s, "flows"); got.rows != 100 {
		t.Fatalf("%d rows after a failed batch, want 100", got.rows)
	}
	write(t, s, aggRecords(10, t0, 3))
	if got := sums(t, s, "flows"); got.rows != 110 {
		t.Fatalf("%d rows, want 110", got.rows)
	}
}

func TestTableVersions(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	a := aggRecords(100, t0, 1)
	write(t, s, a)
	b := aggRecords(50, t0, 2)
	for i := range b {
		b[i].Present = core.FieldDstAddr | core.FieldProto | core.FieldPackets | core.FieldBytes | core.FieldStamps
	}
	write(t, s, b)
	want := sumRecs(a)
	want.add(sumRecs(b))
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("flows_all across versions: %+v, want %+v", got, want)
	}
	if got := sums(t, s, "flows"); got.rows != 50 {
		t.Fatalf("current flows has %d rows, want 50", got.rows)
	}
	if got := sums(t, s, "flows_v1"); got.rows != 100 {
		t.Fatalf("flows_v1 has %d rows, want 100", got.rows)
	}
	res, err := s.Query(ctx, "SELECT count(*) FROM flows_all WHERE src_host IS NULL")
	if err != nil {
		t.Fatal(err)
	}
	if toUint(t, res.Rows[0][0]) != 50 {
		t.Fatalf("rows without src_host: %v", res.Rows)
	}
	// Reopen: the versions survive, compaction handles both.
	s.Close()
	s = openTest(t, dir)
	if _, err := s.Compact(ctx, t0.Add(time.Hour), policy(0, 0)); err != nil {
		t.Fatal(err)
	}
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("flows_all after compaction: %+v, want %+v", got, want)
	}
	if got := sums(t, s, "flows_v1"); got.rows != 0 {
		t.Fatalf("flows_v1 still has %d rows", got.rows)
	}
}

func TestUnaggregated(t *testing.T) {
	s := openTest(t, t.TempDir())
	recs := aggRecords(10, t0, 1)
	for i := range recs {
		r := &recs[i]
		r.Present = fiveTuple | core.FieldPackets | core.FieldBytes | core.FieldStart | core.FieldEnd | core.FieldExporter
		r.Start, r.End = t0.Add(time.Duration(i)*time.Second).UnixNano(), t0.Add(time.Duration(i+1)*time.Second).UnixNano()
		r.StampInserted, r.StampUpdated = 0, 0
		r.Exporter = netip.MustParseAddr("192.0.2.1")
		r.InIface = 3
	}
	write(t, s, recs)
	res, err := s.Query(ctx, "SELECT stamp_inserted, stamp_updated, peer_src_ip, in_iface, packets FROM flows ORDER BY stamp_inserted LIMIT 1")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Rows[0]) != fmt.Sprint([]any{"2026-11-28 03:00:00", "2026-11-28 03:00:01", "192.0.2.1", uint32(3), recs[0].Packets}) {
		t.Fatalf("raw row: %v", res.Rows[0])
	}
}

func TestCompactMovesEverythingAndKeepsTotals(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	var want totals
	for m := range 130 { // a bit over two hours of 1m bins
		recs := aggRecords(200, t0.Add(time.Duration(m)*time.Minute), m)
		write(t, s, recs)
		want.add(sumRecs(recs))
	}
	now := t0.Add(130 * time.Minute)
	// Default compress_after (1h) with 1h partitions: only whole partitions
	// older than 1h move: none at 04:50 (03:50 aligns to 03:00), 03:00-04:00
	// at 05:10.
	rep, err := s.Compact(ctx, t0.Add(110*time.Minute), policy(time.Hour, 0))
	if err != nil {
		t.Fatal(err)
	}
	if rep.CompressedFiles != 0 {
		t.Fatalf("compressed %d files at 04:50 with compress_after 1h; want 0", rep.CompressedFiles)
	}
	rep, err = s.Compact(ctx, t0.Add(2*time.Hour+10*time.Minute), policy(time.Hour, 0))
	if err != nil {
		t.Fatal(err)
	}
	if rep.CompressedFiles != 1 || rep.CompressedRows != 60*200 {
		t.Fatalf("report %+v: want the 03:00 partition (12000 rows) in one file", rep)
	}
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("flows_all after partial compaction: %+v, want %+v", got, want)
	}
	rep, err = s.Compact(ctx, now, policy(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := sums(t, s, "flows"); got.rows != 0 {
		t.Fatalf("hot table has %d rows after compress_after = 0", got.rows)
	}
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("flows_all after compaction: %+v, want %+v", got, want)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "archive", "raw", "v1", "*.parquet"))
	if len(files) != 3 {
		t.Fatalf("archive files %v: want one per partition (3)", files)
	}
	// A repeated pass is a no-op; later rows for a compressed bin add.
	rep, err = s.Compact(ctx, now, policy(0, 0))
	if err != nil || rep.CompressedRows != 0 {
		t.Fatalf("second pass: %+v %v", rep, err)
	}
	late := aggRecords(10, t0, 7)
	write(t, s, late)
	want.add(sumRecs(late))
	if _, err := s.Compact(ctx, now, policy(0, 0)); err != nil {
		t.Fatal(err)
	}
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("flows_all after a late row: %+v, want %+v", got, want)
	}
	// Reopen read-only: the same answers from temporary views.
	s.Close()
	ro, err := Open(ctx, Options{Path: filepath.Join(dir, "flowline.duckdb"), Archive: filepath.Join(dir, "archive"), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got := sums(t, ro, "flows_all"); got != want {
		t.Fatalf("read-only flows_all: %+v, want %+v", got, want)
	}
	st, err := ro.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.CompressedRows != want.rows || st.HotRows != 0 || st.Flows != want.flows || st.CompressedBytes == 0 {
		t.Fatalf("stats %+v, want %d compressed rows, %d flows", st, want.rows, want.flows)
	}
}

func TestRollupTotals(t *testing.T) {
	dir := t.TempDir()
	tier := lifecycle.Rollup{After: core.Duration(time.Hour), History: core.Duration(time.Hour), Primitives: []string{"src_host", "proto", "tcpflags"}}
	s := openTest(t, dir, tier)
	var want totals
	for m := range 180 {
		recs := aggRecords(100, t0.Add(time.Duration(m)*time.Minute), m%7)
		write(t, s, recs)
		want.add(sumRecs(recs))
	}
	now := t0.Add(3 * time.Hour)
	rep, err := s.Compact(ctx, now, policy(0, 0, tier))
	if err != nil {
		t.Fatal(err)
	}
	if rep.RolledUpRows != 2*60*100 {
		t.Fatalf("rolled up %d rows, want the two partitions older than 1h (12000)", rep.RolledUpRows)
	}
	all, hourly := sums(t, s, "flows_all"), sums(t, s, "flows_1h")
	if all != want || hourly.packets != want.packets || hourly.bytes != want.bytes || hourly.flows != want.flows {
		t.Fatalf("flows_all %+v, flows_1h %+v, want %+v", all, hourly, want)
	}
	if hourly.rows > 3*700 {
		t.Fatalf("flows_1h has %d rows for %d raw rows: not rolled up", hourly.rows, all.rows)
	}
	// Each rolled partition alone: its tier file equals its raw files.
	res, err := s.Query(ctx, `SELECT count(*) FROM (
		SELECT date_trunc('hour', stamp_inserted) h, src_host, sum(packets) p, sum(bytes) b FROM flows_all GROUP BY ALL
		EXCEPT SELECT stamp_inserted, src_host, sum(packets), sum(bytes) FROM flows_1h GROUP BY ALL)`)
	if err != nil {
		t.Fatal(err)
	}
	if n := toUint(t, res.Rows[0][0]); n != 0 {
		t.Fatalf("%d (hour, src_host) sums differ between flows_all and flows_1h", n)
	}
	// The tier outlives raw rows: delete raw after 2h, keep the tier.
	tier.DeleteAfter = core.Duration(365 * 24 * time.Hour)
	if _, err := s.Compact(ctx, now.Add(time.Hour), policy(0, 2*time.Hour, tier)); err != nil {
		t.Fatal(err)
	}
	if hourly2 := sums(t, s, "flows_1h"); hourly2.packets != want.packets {
		t.Fatalf("flows_1h after raw deletion: %+v, want packets %d", hourly2, want.packets)
	}
	if all2 := sums(t, s, "flows_all"); all2.rows != 60*100 {
		t.Fatalf("flows_all after deleting two partitions: %d rows, want 6000", all2.rows)
	}
}

func TestDeleteAfterExactPartitions(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	for h := range 6 {
		write(t, s, aggRecords(10, t0.Add(time.Duration(h)*time.Hour+30*time.Minute), h))
	}
	now := t0.Add(6 * time.Hour)
	if _, err := s.Compact(ctx, now, policy(0, 0)); err != nil {
		t.Fatal(err)
	}
	// delete_after 3h at 09:00: partitions ending at or before 06:00 go:
	// 03:00, 04:00, 05:00; 06:00, 07:00, 08:00 stay.
	rep, err := s.Compact(ctx, now, policy(0, 3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeletedPartitions != 3 || rep.DeletedRows != 30 {
		t.Fatalf("report %+v: want 3 partitions, 30 rows", rep)
	}
	res, err := s.Query(ctx, "SELECT DISTINCT hour(stamp_inserted) FROM flows_all ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Rows) != "[[6] [7] [8]]" {
		t.Fatalf("hours left: %v", res.Rows)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "archive", "raw", "v1", "*.parquet"))
	if len(files) != 3 {
		t.Fatalf("files left: %v", files)
	}
	// One microsecond short of the next boundary deletes nothing more.
	rep, err = s.Compact(ctx, now.Add(time.Hour-time.Microsecond), policy(0, 3*time.Hour))
	if err != nil || rep.DeletedPartitions != 0 {
		t.Fatalf("%+v %v", rep, err)
	}
	// Hot rows in expired partitions go too.
	write(t, s, aggRecords(5, t0.Add(3*time.Hour+59*time.Minute), 9))
	rep, err = s.Compact(ctx, now.Add(time.Hour), policy(time.Hour, 3*time.Hour))
	if err != nil || rep.DeletedPartitions != 1 || rep.DeletedRows != 15 {
		t.Fatalf("%+v %v", rep, err)
	}
}

func TestCorruptAndForeignFiles(t *testing.T) {
	// A foreign file where the DuckDB file should be.
	dir := t.TempDir()
	path := filepath.Join(dir, "flowline.duckdb")
	os.WriteFile(path, []byte("hello, this is not a database at all"), 0o644)
	_, err := Open(ctx, Options{Path: path, Archive: filepath.Join(dir, "archive")})
	if err == nil || !strings.Contains(err.Error(), path) || !core.IsPermanent(err) {
		t.Fatalf("foreign db file: %v", err)
	}
	// A DuckDB header with garbage after it.
	garbage := make([]byte, 1<<16)
	copy(garbage[8:], "DUCK")
	for i := 12; i < len(garbage); i++ {
		garbage[i] = byte(i * 7)
	}
	os.WriteFile(path, garbage, 0o644)
	_, err = Open(ctx, Options{Path: path, Archive: filepath.Join(dir, "archive")})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt db file: %v", err)
	}

	// A good store with a corrupted archive file and a foreign one.
	dir = t.TempDir()
	s := openTest(t, dir)
	write(t, s, aggRecords(100, t0, 1))
	if _, err := s.Compact(ctx, t0.Add(time.Hour), policy(0, 0)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "archive", "raw", "v1", "*.parquet"))
	if len(files) != 1 {
		t.Fatal(files)
	}
	foreign := filepath.Join(dir, "archive", "notes.txt")
	os.WriteFile(foreign, []byte("x"), 0o644)
	_, err = Open(ctx, Options{Path: filepath.Join(dir, "flowline.duckdb"), Archive: filepath.Join(dir, "archive")})
	if err == nil || !strings.Contains(err.Error(), foreign) {
		t.Fatalf("foreign archive file: %v", err)
	}
	os.Remove(foreign)
	f, _ := os.OpenFile(files[0], os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("junk"))
	f.Close()
	_, err = Open(ctx, Options{Path: filepath.Join(dir, "flowline.duckdb"), Archive: filepath.Join(dir, "archive")})
	if err == nil || !strings.Contains(err.Error(), files[0]) {
		t.Fatalf("corrupt archive file: %v", err)
	}
	os.Remove(files[0])
	_, err = Open(ctx, Options{Path: filepath.Join(dir, "flowline.duckdb"), Archive: filepath.Join(dir, "archive")})
	if err == nil || !strings.Contains(err.Error(), files[0]) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing archive file: %v", err)
	}
}

func TestOrphansRemoved(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	recs := aggRecords(100, t0, 1)
	write(t, s, recs)
	s.Close()
	// What a crash between rename and commit leaves: a renamed file that no
	// manifest entry lists, and a temporary file.
	d := filepath.Join(dir, "archive", "raw", "v1")
	os.MkdirAll(d, 0o755)
	orphan := filepath.Join(d, "20261128T0300Z_000001.parquet")
	tmp := filepath.Join(d, "20261128T0300Z_000002.parquet.tmp")
	os.WriteFile(orphan, []byte("PAR1 half a file"), 0o644)
	os.WriteFile(tmp, []byte("PAR1"), 0o644)
	s = openTest(t, dir)
	for _, p := range []string{orphan, tmp} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s survived the open", p)
		}
	}
	if _, err := s.Compact(ctx, t0.Add(time.Hour), policy(0, 0)); err != nil {
		t.Fatal(err)
	}
	if got := sums(t, s, "flows_all"); got != sumRecs(recs) {
		t.Fatalf("%+v", got)
	}
}

// TestCompactWhileWriting runs passes while batches keep arriving, some of
// them for bins the pass is archiving: no row is lost or counted twice.
func TestCompactWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	var want totals
	for m := range 120 {
		recs := aggRecords(500, t0.Add(time.Duration(m)*time.Minute), m)
		write(t, s, recs)
		want.add(sumRecs(recs))
	}
	done := make(chan totals)
	go func() {
		var w totals
		for i := range 200 {
			// Alternately an old bin (being archived) and a new one.
			bin := t0.Add(time.Duration(i%120) * time.Minute)
			if i%2 == 1 {
				bin = t0.Add(3 * time.Hour)
			}
			recs := aggRecords(300, bin, 1000+i)
			if _, err := s.Write(ctx, recs); err != nil {
				t.Error(err)
				break
			}
			w.add(sumRecs(recs))
		}
		done <- w
	}()
	passes := 0
	for {
		select {
		case w := <-done:
			want.add(w)
			if _, err := s.Compact(ctx, t0.Add(2*time.Hour), policy(0, 0)); err != nil {
				t.Fatal(err)
			}
			if got := sums(t, s, "flows_all"); got != want {
				t.Fatalf("after %d concurrent passes: %+v, want %+v", passes, got, want)
			}
			res, err := s.Query(ctx, "SELECT count(*) FROM flows WHERE stamp_inserted < TIMESTAMP '2026-11-28 05:00:00'")
			if err != nil || toUint(t, res.Rows[0][0]) != 0 {
				t.Fatalf("old hot rows left: %v %v", res, err)
			}
			t.Logf("%d passes ran during the writes", passes)
			return
		default:
		}
		if _, err := s.Compact(ctx, t0.Add(2*time.Hour), policy(0, 0)); err != nil {
			t.Fatal(err)
		}
		passes++
	}
}

// TestPluginAPI drives the plugin as the engine does and asks it over the
// metrics address as the CLI does while the collector holds the file.
func TestPluginAPI(t *testing.T) {
	dir := t.TempDir()
	reg := metrics.New()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := reg.Serve(sctx, addr, false, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	d := New()
	d.Lifecycle.CompressAfter = 0
	d.MemoryLimit = 256 << 20
	env := core.NewEnv("store", dir)
	env.HTTP = reg
	if err := d.Init(env); err != nil {
		t.Fatal(err)
	}
	if d.Policy() == nil || d.Policy().DeleteAfter != lifecycle.DefaultPolicy().DeleteAfter {
		t.Fatalf("policy %+v: want the defaults but compress_after", d.Policy())
	}
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	b := core.NewBatch()
	b.Records = append(b.Records, aggRecords(1000, t0, 1)...)
	want := sumRecs(b.Records)
	if err := d.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	b.Release()
	post := func(what, body string) (int, string) {
		resp, err := http.Post("http://"+addr+APIPath("store", what), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if code, out := post("query", `{"sql": "SELECT current_setting('memory_limit') AS m"}`); code != 200 || !strings.Contains(out, "256.0 MiB") {
		t.Fatalf("memory_limit: %d %s", code, out)
	}
	code, out := post("query", `{"sql": "SELECT sum(packets) AS p FROM flows_all"}`)
	if code != 200 || !strings.Contains(out, fmt.Sprintf(`"rows":[[%d]]`, want.packets)) {
		t.Fatalf("query: %d %s", code, out)
	}
	if code, out := post("query", `{"sql": "DELETE FROM flows"}`); code != 400 || !strings.Contains(out, "read-only") {
		t.Fatalf("DELETE over the API: %d %s", code, out)
	}
	if code, out := post("compact", `{}`); code != 200 || !strings.Contains(out, `"compressed_rows":1000`) {
		t.Fatalf("compact: %d %s", code, out)
	}
	if code, out := post("stats", `{}`); code != 200 || !strings.Contains(out, `"compressed_rows":1000`) {
		t.Fatalf("stats: %d %s", code, out)
	}
	if resp, err := http.Get("http://" + addr + APIPath("store", "stats")); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v", resp, err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _ := post("query", `{"sql": "SELECT 1"}`); code != 404 {
		t.Fatalf("API after Close: %d", code)
	}
}
