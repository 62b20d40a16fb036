package duckdb

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/plugins/common/netflow"
)

// rawBatches decodes n flows of flowgen's NetFlow v5 traffic (hosts client
// hosts, arriving at rate flows/s from start) into batches of about size
// records, as the template processor hands them to outputs.
func rawBatches(tb testing.TB, n, hosts int, rate float64, start time.Time, size int) []*core.Batch {
	var produced int
	now := func() time.Time { return start.Add(time.Duration(float64(produced) / rate * float64(time.Second))) }
	g, err := flowgen.NewGenerator(flowgen.Config{Version: 5, Seed: 7, HostPool: hosts, Clock: now})
	if err != nil {
		tb.Fatal(err)
	}
	exp := netip.MustParseAddrPort("192.0.2.1:2055")
	var out []*core.Batch
	b := core.NewBatch()
	for produced < n {
		pkt, kind, flows := g.Next()
		if kind != flowgen.PacketData {
			continue
		}
		if _, err := netflow.DecodeV5(pkt, exp, now().UnixNano(), b); err != nil {
			tb.Fatal(err)
		}
		produced += flows
		if len(b.Records) >= size {
			out = append(out, b)
			b = core.NewBatch()
		}
	}
	return append(out, b)
}

func batchTotals(bs []*core.Batch) totals {
	var t totals
	for _, b := range bs {
		t.add(sumRecs(b.Records))
	}
	return t
}

// TestRawLogTotals writes flows through the raw flow log across partitions
// and segments and checks the store's totals, its stats and the segment
// files: before and after reopening, and after a life-cycle pass merged the
// segments.
func TestRawLogTotals(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	l, err := s.OpenRawLog(ctx, RawLogOptions{SegmentRows: 7000, FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// 50,000 flows over about 104 minutes from 10:20: three partitions,
	// several segments each.
	start := time.Date(2026, 11, 28, 10, 20, 0, 0, time.UTC)
	bs := rawBatches(t, 50000, 1000, 8, start, 1000)
	want := batchTotals(bs)
	r := bs[0].Records[0]
	for _, b := range bs {
		l.Write(b)
		b.Release()
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("flows_all %+v, want %+v", got, want)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.CompressedRows != want.flows || st.Flows != want.flows || st.HotRows != 0 || st.BytesPerFlowCompressed <= 0 {
		t.Fatalf("stats: %+v", st)
	}
	if st.CompressedFiles < 8 {
		t.Fatalf("%d segment files, want at least 8", st.CompressedFiles)
	}
	// The raw columns read back: one flow compared field by field.
	res, err := s.Query(ctx, "SELECT src_host, dst_host, src_port, dst_port, proto, peer_src_ip, packets FROM flows_all WHERE src_port = "+itoa(int(r.SrcPort))+" AND dst_port = "+itoa(int(r.DstPort))+" AND src_host = ipv4('"+r.SrcAddr.String()+"') AND packets = "+itoa(int(r.Packets)))
	if err != nil || len(res.Rows) == 0 {
		t.Fatalf("flow %v not found: %v", r, err)
	}
	if row := res.Rows[0]; row[0] != r.SrcAddr.String() || row[1] != r.DstAddr.String() || row[5] != "192.0.2.1" {
		t.Fatalf("row %v, want %v -> %v from 192.0.2.1", row, r.SrcAddr, r.DstAddr)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir)
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("after reopen %+v, want %+v", got, want)
	}
	// A pass merges each partition's segments into one file.
	rep, err := s.Compact(ctx, start.Add(3*time.Hour), policy(time.Hour, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("after merge %+v (%s), want %+v", got, rep, want)
	}
	st, err = s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.CompressedFiles != 3 || st.CompressedRows != want.flows {
		t.Fatalf("after merge: %d files, %d rows; want 3 files, %d rows", st.CompressedFiles, st.CompressedRows, want.flows)
	}
	s.Close()
}

// TestRawLogAcks checks that a batch with an acknowledgement is acked only
// once its segment is listed.
func TestRawLogAcks(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	l, err := s.OpenRawLog(ctx, RawLogOptions{SegmentRows: 1 << 20, FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	bs := rawBatches(t, 3000, 100, 1000, time.Now(), 1000)
	acked := make(chan bool, len(bs))
	for _, b := range bs {
		b.OnDone(func(ok bool) { acked <- ok })
		l.Write(b)
		b.Release()
	}
	select {
	case <-acked:
		t.Fatal("acked before the segment was listed")
	case <-time.After(200 * time.Millisecond):
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for range bs {
		select {
		case ok := <-acked:
			if !ok {
				t.Fatal("acked with ok=false")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("not acked after the flush")
		}
	}
	s.Close()
}

// TestRawLogSpoolColumns checks that every raw column has a spool
// expression and that a spool file of nulls and IPv6 reads back.
func TestRawLogSpoolColumns(t *testing.T) {
	if _, err := newRawLayout(); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	l, err := s.OpenRawLog(ctx, RawLogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := core.NewBatch()
	v6 := b.AppendRecord()
	*v6 = core.Record{SrcAddr: netip.MustParseAddr("2001:db8::1"), DstAddr: netip.MustParseAddr("2001:db8::2"), SrcPort: 65535, DstPort: 443,
		Proto: 6, TCPFlags: 0x1b, TOS: 255, SrcMask: 64, DstMask: 128, SrcAS: 4200000000, DstAS: 1, InIface: 7, OutIface: 8,
		SamplingRate: 100, Packets: 1 << 40, Bytes: 1 << 50, Start: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC).UnixNano()}
	none := b.AppendRecord() // no addresses, no times: stamped at the write time
	*none = core.Record{Packets: 1, Bytes: 2}
	opt := b.AppendRecord()
	*opt = core.Record{Flags: core.FlagOptions, Packets: 99}
	if !l.Write(b) {
		t.Fatal("Write skipped a batch without origin")
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := s.Query(ctx, `SELECT src_host, dst_host, src_port, dst_port, proto, tcpflags, tos, src_mask, dst_mask, src_as, dst_as, in_iface, out_iface,
		sampling_rate, packets, bytes, flows, stamp_inserted, peer_src_ip FROM flows_all ORDER BY packets DESC`)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 2 {
		t.Fatalf("rows %v", res.Rows)
	}
	got := res.Rows[0]
	want := []any{"2001:db8::1", "2001:db8::2", uint16(65535), uint16(443), uint8(6), uint8(0x1b), uint8(255), uint8(64), uint8(128),
		uint32(4200000000), uint32(1), uint32(7), uint32(8), uint32(100), uint64(1 << 40), uint64(1 << 50), uint64(1), "2026-01-02 03:04:05", nil}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s = %#v, want %#v", res.Columns[i], got[i], want[i])
		}
	}
	if n := res.Rows[1]; n[0] != nil || n[1] != nil || n[14] != uint64(1) {
		t.Errorf("address-less flow read back as %v", n)
	}
	s.Close()
}

func itoa(n int) string { return strconv.Itoa(n) }

// BenchmarkRawLog measures the raw flow log on flowgen traffic
// (1,000,000 flows, 10,000 hosts): the CPU of Write (the pipeline's share,
// per flow), the writer's CPU per flow (the spool file, DuckDB's sort and
// zstd, the read-back), and the bytes per flow of the segment files.
//
//	go test -run '^$' -bench RawLog -benchtime 1x -cpu 1 ./plugins/outputs/duckdb/
func BenchmarkRawLog(b *testing.B) {
	const n = 1 << 20
	for _, seg := range []int{256 << 10, 1 << 20} {
		b.Run(strconv.Itoa(seg>>10)+"k", func(b *testing.B) {
			bs := rawBatches(b, n, 10000, 200000, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), 1024)
			want := batchTotals(bs)
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "f.duckdb"), Archive: filepath.Join(dir, "archive"), Threads: 1})
				if err != nil {
					b.Fatal(err)
				}
				l, err := s.OpenRawLog(context.Background(), RawLogOptions{SegmentRows: seg, FlushEvery: time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				c0 := cpuTime()
				w0 := time.Now()
				for _, bt := range bs {
					l.Write(bt)
				}
				wcpu := time.Since(w0)
				if err := l.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
				total := cpuTime() - c0
				st, err := s.Stats(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if st.Flows != want.flows {
					b.Fatalf("stored %d flows, want %d", st.Flows, want.flows)
				}
				b.ReportMetric(float64(wcpu.Nanoseconds())/float64(want.flows), "write-ns/flow")
				b.ReportMetric(float64(total.Nanoseconds())/float64(want.flows), "cpu-ns/flow")
				b.ReportMetric(st.BytesPerFlowCompressed, "B/flow")
				l.Close(context.Background())
				s.Close()
				os.RemoveAll(dir)
			}
		})
	}
}

// BenchmarkRawEncode measures the two per-flow costs of the raw flow log
// on flowgen traffic (256k flows, 10,000 hosts): copying records into the
// columnar buffer (add, in the output's Write) and encoding the segment
// (encode, in the background writer), in CPU time of the process per flow
// (less noisy than wall time on a shared machine), and the encoded size.
//
//	go test -run '^$' -bench RawEncode -cpu 1 ./plugins/outputs/duckdb/
func BenchmarkRawEncode(b *testing.B) {
	bs := rawBatches(b, 1<<18, 10000, 200000, time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC), 1024)
	layout, err := newRawLayout()
	if err != nil {
		b.Fatal(err)
	}
	buf := &rawBuffer{rawLayout: layout}
	fill := func() {
		buf.reset(0, time.Time{})
		now := time.Now()
		for _, bt := range bs {
			for i := range bt.Records {
				r := &bt.Records[i]
				buf.add(r, firstNonZero(r, true, now), firstNonZero(r, false, now))
			}
		}
	}
	fill()
	b.Run("add", func(b *testing.B) {
		c0 := cpuTime()
		for b.Loop() {
			fill()
		}
		b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N*buf.rows), "cpu-ns/flow")
	})
	b.Run("encode", func(b *testing.B) {
		var n countWriter
		c0 := cpuTime()
		for b.Loop() {
			n = 0
			buf.finish()
			if err := encodeParquet(&n, buf.cols, buf.rows, &pageEncoder{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N*buf.rows), "cpu-ns/flow")
		b.ReportMetric(float64(n)/float64(buf.rows), "B/flow")
	})
}

type countWriter int

func (w *countWriter) Write(p []byte) (int, error) { *w += countWriter(len(p)); return len(p), nil }

// TestRawLogOrigins: a redelivered batch (inputs.amqp: the same writer
// and sequence) is stored once, whether its first copy is still buffered
// or already listed, also across a reopen.
func TestRawLogOrigins(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	l, err := s.OpenRawLog(ctx, RawLogOptions{FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	bs := rawBatches(t, 4000, 100, 1000, time.Now(), 1000)
	var want totals
	write := func(l *RawLog, b *core.Batch, seq uint64, stored bool) {
		t.Helper()
		b.Origin = core.Origin{Writer: "edge-1", Seq: seq}
		if got := l.Write(b); got != stored {
			t.Fatalf("seq %d: Write = %v, want %v", seq, got, stored)
		}
		if stored {
			want.add(sumRecs(b.Records))
		}
	}
	write(l, bs[0], 1, true)
	write(l, bs[1], 2, true)
	write(l, bs[1], 2, false) // still buffered
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	write(l, bs[1], 2, false) // listed
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir)
	l, err = s.OpenRawLog(ctx, RawLogOptions{FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	write(l, bs[1], 2, false) // after a reopen
	write(l, bs[2], 3, true)
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("stored %+v, want %+v", got, want)
	}
}

// TestRawLogKeepSegments: with merge = false a pass leaves the segments
// (and the totals) as they are.
func TestRawLogKeepSegments(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "f.duckdb"), Archive: filepath.Join(dir, "archive"), KeepSegments: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	l, err := s.OpenRawLog(ctx, RawLogOptions{SegmentRows: 2000, FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 28, 10, 20, 0, 0, time.UTC)
	bs := rawBatches(t, 10000, 100, 100, start, 1000)
	want := batchTotals(bs)
	for _, b := range bs {
		l.Write(b)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	before := len(s.filesOf(RawTier))
	if _, err := s.Compact(ctx, start.Add(3*time.Hour), policy(time.Hour, 0)); err != nil {
		t.Fatal(err)
	}
	if after := len(s.filesOf(RawTier)); after != before || before < 5 {
		t.Fatalf("%d segment files before the pass, %d after; want them kept", before, after)
	}
	if got := sums(t, s, "flows_all"); got != want {
		t.Fatalf("stored %+v, want %+v", got, want)
	}
}

// BenchmarkRawListing measures what listing raw segments costs as they add
// up before the life cycle merges them (the views name every file): the
// time of one listing of 30 segments with 1,000, 3,000 and 6,000 segments
// listed before it. The lister waits ten times this between listings.
//
//	go test -run '^$' -bench RawListing ./plugins/outputs/duckdb/
func BenchmarkRawListing(b *testing.B) {
	for _, listed := range []int{1000, 3000, 6000} {
		b.Run(strconv.Itoa(listed), func(b *testing.B) {
			dir := b.TempDir()
			s := openTest(b, dir)
			ctx := context.Background()
			l, err := s.OpenRawLog(ctx, RawLogOptions{SegmentRows: 1024, FlushEvery: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(ctx)
			bs := rawBatches(b, 30*1024, 1000, 1e6, time.Date(2026, 11, 28, 10, 20, 0, 0, time.UTC), 1024)
			// write seals what Write left open and waits for the files,
			// so that a listing takes 30 segments.
			write := func() {
				for _, bt := range bs {
					l.Write(bt)
				}
				l.mu.Lock()
				for len(l.open) > 0 {
					l.seal(l.open[0])
				}
				l.mu.Unlock()
				l.pending.Wait()
			}
			list := func() time.Duration {
				start := time.Now()
				s.passMu.Lock()
				err := l.commit(ctx)
				s.passMu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			for range listed / 30 {
				write()
				list()
			}
			var took time.Duration
			for i := 0; i < b.N; i++ {
				write()
				took += list()
			}
			b.ReportMetric(float64(took.Microseconds())/1000/float64(b.N), "ms/listing")
		})
	}
}
