package aggregate

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
)

func rec(src, dst string, sport, dport uint16, proto, flags uint8, pkts, bytes uint64, recv time.Time) core.Record {
	return core.Record{
		SrcAddr: netip.MustParseAddr(src), DstAddr: netip.MustParseAddr(dst),
		SrcPort: sport, DstPort: dport, Proto: proto, TCPFlags: flags,
		Packets: pkts, Bytes: bytes, Flows: 1, Received: recv.UnixNano(),
		SrcMask: 24, DstMask: 16, Exporter: netip.MustParseAddr("192.0.2.1"),
	}
}

func newAgg(t testing.TB, prims []string, history time.Duration) *Aggregate {
	t.Helper()
	a := &Aggregate{Primitives: prims, History: configDuration(history), Refresh: configDuration(time.Minute), Time: "arrival", BatchSize: 2}
	if err := a.Init(core.NewEnv("test", "")); err != nil {
		t.Fatal(err)
	}
	return a
}

func collect(out *[]core.Record) core.Emit {
	return func(b *core.Batch) {
		*out = append(*out, b.Records...)
		b.Release()
	}
}

func TestSumsAndOrsByKeyWithinBin(t *testing.T) {
	a := newAgg(t, []string{"src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"}, 10*time.Minute)
	t0 := time.Date(2026, 11, 28, 10, 3, 0, 0, time.UTC)
	b := core.NewBatch()
	b.Records = append(b.Records,
		rec("10.0.0.1", "10.0.0.2", 1000, 443, 6, 0x02, 1, 60, t0),
		rec("10.0.0.1", "10.0.0.2", 1000, 443, 6, 0x10, 10, 1500, t0.Add(time.Minute)),
		rec("10.0.0.1", "10.0.0.2", 1000, 443, 6, 0x01, 2, 100, t0.Add(8*time.Minute)), // next bin
		rec("10.0.0.3", "10.0.0.2", 1000, 443, 17, 0, 5, 500, t0),
	)
	if err := a.Process(context.Background(), b, nil); err != nil {
		t.Fatal(err)
	}
	var got []core.Record
	now := time.Date(2026, 11, 28, 10, 20, 0, 0, time.UTC)
	if err := a.Tick(context.Background(), now, collect(&got)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d aggregates, want 3: %+v", len(got), got)
	}
	bin0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC).UnixNano()
	bin1 := time.Date(2026, 11, 28, 10, 10, 0, 0, time.UTC).UnixNano()
	type want struct {
		src     string
		stamp   int64
		pkts    uint64
		bytes   uint64
		flows   uint64
		flags   uint8
		present core.Field
	}
	wants := []want{
		{"10.0.0.1", bin0, 11, 1560, 2, 0x12, 0},
		{"10.0.0.1", bin1, 2, 100, 1, 0x01, 0},
		{"10.0.0.3", bin0, 5, 500, 1, 0, 0},
	}
	for i, w := range wants {
		r := got[i]
		if r.SrcAddr.String() != w.src || r.StampInserted != w.stamp || r.Packets != w.pkts || r.Bytes != w.bytes || r.Flows != w.flows || r.TCPFlags != w.flags {
			t.Errorf("aggregate %d = src %s stamp %d pkts %d bytes %d flows %d flags %#x; want %+v", i, r.SrcAddr, r.StampInserted, r.Packets, r.Bytes, r.Flows, r.TCPFlags, w)
		}
		if r.StampUpdated != now.UnixNano() {
			t.Errorf("aggregate %d stamp_updated = %d, want %d", i, r.StampUpdated, now.UnixNano())
		}
		wantMask := core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldTCPFlags | core.FieldProto | core.FieldPackets | core.FieldBytes | core.FieldStamps
		if r.Present != wantMask {
			t.Errorf("aggregate %d Present = %b, want %b", i, r.Present, wantMask)
		}
		if r.Exporter.IsValid() {
			t.Errorf("aggregate %d carries exporter %s though peer_src_ip was not chosen", i, r.Exporter)
		}
	}
	// Purge semantics: the next refresh emits nothing new.
	got = got[:0]
	_ = a.Tick(context.Background(), now.Add(time.Minute), collect(&got))
	if len(got) != 0 {
		t.Fatalf("second refresh emitted %d aggregates; the table must be cleared", len(got))
	}
}

func TestNetsMasksPeerAndNoHistory(t *testing.T) {
	a := newAgg(t, []string{"src_net", "dst_net", "src_mask", "peer_src_ip", "flows"}, 0)
	t0 := time.Unix(1_700_000_000, 0)
	b := core.NewBatch()
	b.Records = append(b.Records,
		rec("10.1.2.3", "172.16.5.6", 1, 2, 6, 0, 1, 10, t0),
		rec("10.1.2.200", "172.16.9.9", 3, 4, 17, 0, 2, 20, t0),
	)
	_ = a.Process(context.Background(), b, nil)
	var got []core.Record
	_ = a.Flush(context.Background(), collect(&got))
	if len(got) != 1 {
		t.Fatalf("got %d aggregates, want 1 (same /24 and /16 networks): %+v", len(got), got)
	}
	r := got[0]
	if r.SrcAddr.String() != "10.1.2.0" || r.DstAddr.String() != "172.16.0.0" || r.SrcMask != 24 || r.Exporter.String() != "192.0.2.1" {
		t.Errorf("key = net_src %s net_dst %s mask %d peer %s", r.SrcAddr, r.DstAddr, r.SrcMask, r.Exporter)
	}
	if r.Packets != 3 || r.Bytes != 30 || r.Flows != 2 || r.StampInserted != 0 || r.Present&core.FieldStamps != 0 {
		t.Errorf("counters = %d/%d/%d stamp %d present %b", r.Packets, r.Bytes, r.Flows, r.StampInserted, r.Present)
	}
	if r.Present&core.FieldFlows == 0 || r.Present&core.FieldSrcNet == 0 || r.Present&core.FieldSrcAddr != 0 {
		t.Errorf("Present = %b: want flows and src_net, not src_host", r.Present)
	}
}

// TestNetWithoutMaskPrimitive: src_net alone keeps the mask in the record
// (outputs print net_src from address and mask), and networks of different
// lengths stay apart.
func TestNetWithoutMaskPrimitive(t *testing.T) {
	a := newAgg(t, []string{"src_net"}, 0)
	t0 := time.Unix(1_700_000_000, 0)
	r1 := rec("10.1.2.3", "172.16.5.6", 1, 2, 6, 0, 1, 10, t0)
	r2 := r1
	r2.SrcMask = 8
	b := core.NewBatch()
	b.Records = append(b.Records, r1, r2)
	_ = a.Process(context.Background(), b, nil)
	var got []core.Record
	_ = a.Flush(context.Background(), collect(&got))
	if len(got) != 2 {
		t.Fatalf("10.1.2.0/24 and 10.0.0.0/8 merged: %d aggregates", len(got))
	}
	if got[0].SrcMask != 24 || got[0].SrcAddr.String() != "10.1.2.0" || got[1].SrcMask != 8 || got[1].SrcAddr.String() != "10.0.0.0" {
		t.Errorf("aggregates = %s/%d, %s/%d", got[0].SrcAddr, got[0].SrcMask, got[1].SrcAddr, got[1].SrcMask)
	}
	if got[0].Present&core.FieldSrcMask != 0 {
		t.Error("mask_src present though src_mask was not chosen")
	}
}

func TestFlowTimeBins(t *testing.T) {
	a := &Aggregate{Primitives: []string{"proto"}, History: configDuration(time.Hour), Refresh: configDuration(time.Minute), Time: "flow"}
	if err := a.Init(core.NewEnv("test", "")); err != nil {
		t.Fatal(err)
	}
	r := rec("10.0.0.1", "10.0.0.2", 1, 2, 6, 0, 1, 1, time.Date(2026, 1, 1, 12, 0, 5, 0, time.UTC))
	r.Start = time.Date(2026, 1, 1, 11, 59, 0, 0, time.UTC).UnixNano()
	b := core.NewBatch()
	b.Records = append(b.Records, r)
	_ = a.Process(context.Background(), b, nil)
	var got []core.Record
	_ = a.Flush(context.Background(), collect(&got))
	if want := time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC).UnixNano(); len(got) != 1 || got[0].StampInserted != want {
		t.Fatalf("flow-time bin = %+v, want stamp %d", got, want)
	}
}

func TestBadConfig(t *testing.T) {
	for _, a := range []*Aggregate{
		{Primitives: []string{"src_hots"}, Refresh: configDuration(time.Second), Time: "arrival"},
		{Primitives: nil, Refresh: configDuration(time.Second), Time: "arrival"},
		{Primitives: []string{"proto"}, Refresh: 0, Time: "arrival"},
		{Primitives: []string{"proto"}, Refresh: configDuration(time.Second), Time: "sometimes"},
	} {
		if err := a.Init(core.NewEnv("test", "")); err == nil {
			t.Errorf("Init(%+v) succeeded; want an error", a)
		}
	}
}

// BenchmarkAggregate5Tuple adds realistic 5-tuple flows (100k distinct keys)
// and reports flows per second on one core.
func BenchmarkAggregate5Tuple(b *testing.B) {
	t := NewTable(mustMask(b, "src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"), 10*time.Minute, false)
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]core.Record, 1<<16)
	now := time.Now().UnixNano()
	for i := range recs {
		recs[i] = core.Record{
			SrcAddr: netip.AddrFrom4([4]byte{10, 1, byte(rng.IntN(40)), byte(rng.IntN(250))}),
			DstAddr: netip.AddrFrom4([4]byte{192, 168, 0, byte(rng.IntN(100))}),
			SrcPort: uint16(32768 + rng.IntN(8)), DstPort: []uint16{443, 80, 53, 22}[rng.IntN(4)],
			Proto: 6, TCPFlags: 0x18, Packets: 10, Bytes: 1000, Received: now,
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t.Add(&recs[i&(len(recs)-1)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
}

func mustMask(tb testing.TB, names ...string) core.Field {
	m, err := core.PrimitiveMask(names)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// BenchmarkAggregateManyKeys adds flows drawn from 300,000 distinct
// 5-tuples (a table far larger than the CPU caches, as with 10,000 hosts
// and a 1m bin), reporting flows per second on one core.
func BenchmarkAggregateManyKeys(b *testing.B) {
	t := NewTable(mustMask(b, "src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"), 10*time.Minute, false)
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Now().UnixNano()
	pool := make([]core.Record, 300_000)
	for i := range pool {
		pool[i] = core.Record{
			SrcAddr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8 % 40), byte(i)}),
			DstAddr: netip.AddrFrom4([4]byte{172, 16, byte(rng.IntN(4)), byte(rng.IntN(250))}),
			SrcPort: uint16(32768 + i/10000), DstPort: []uint16{443, 80, 53, 22}[rng.IntN(4)],
			Proto: 6, TCPFlags: 0x18, Packets: 10, Bytes: 1000, Received: now,
		}
	}
	recs := make([]core.Record, 1<<20)
	for i := range recs {
		recs[i] = pool[rng.IntN(len(pool))]
	}
	for i := range recs { // the table holds every key: the steady state of a bin
		t.Add(&recs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t.Add(&recs[i&(len(recs)-1)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
	b.ReportMetric(float64(len(t.keys)), "keys")
}

// TestIndexGrowsExact adds 200,000 distinct keys twice (the index grows
// from its initial size several times) and checks each key has one row
// with both flows.
func TestIndexGrowsExact(t *testing.T) {
	tb := NewTable(mustMask(t, "src_host", "dst_host", "src_port", "dst_port", "proto"), time.Minute, false)
	now := time.Now().UnixNano()
	const n = 200_000
	for round := 0; round < 2; round++ {
		for i := 0; i < n; i++ {
			r := core.Record{SrcAddr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), DstAddr: netip.MustParseAddr("2001:db8::1"),
				SrcPort: uint16(i), DstPort: 443, Proto: 6, Packets: 1, Bytes: 100, Received: now}
			tb.Add(&r)
		}
	}
	if len(tb.keys) != n {
		t.Fatalf("%d rows for %d keys", len(tb.keys), n)
	}
	for i, v := range tb.vals {
		if v.flows != 2 || v.packets != 2 {
			t.Fatalf("row %d: %+v, want 2 flows", i, v)
		}
	}
}
