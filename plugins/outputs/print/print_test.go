package print

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/registry"
)

var (
	ctx       = context.Background()
	bin       = time.Date(2026, 11, 28, 3, 28, 0, 0, time.UTC)
	updated   = time.Date(2026, 11, 28, 3, 28, 47, 0, time.UTC)
	aggMaskV4 = core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldTCPFlags | core.FieldProto | core.FieldPackets | core.FieldBytes | core.FieldStamps
)

func aggRecord() core.Record {
	return core.Record{
		SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("192.168.1.10"),
		SrcPort: 40000, DstPort: 443, TCPFlags: 0x1a, Proto: 6, Packets: 11, Bytes: 5060,
		StampInserted: bin.UnixNano(), StampUpdated: updated.UnixNano(), Present: aggMaskV4,
	}
}

// newPrint returns an initialized, connected Print writing to buf (stdout).
func newPrint(t *testing.T, p *Print, buf *bytes.Buffer) *Print {
	t.Helper()

	p.stdout = buf
	if err := p.Init(core.NewEnv("print", "")); err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

func write(t *testing.T, p *Print, recs ...core.Record) {
	t.Helper()
	b := core.NewBatch()
	defer b.Release()
	b.Records = append(b.Records, recs...)
	if err := p.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
}

// Golden lines are nfacctd 1.7.7's own output (tests/pmacct probe) for the
// same flows.
func TestJSONAggregatedGolden(t *testing.T) {
	var buf bytes.Buffer
	p := newPrint(t, &Print{Format: "json", TimestampsUTC: true}, &buf)
	v6 := aggRecord()
	v6.SrcAddr, v6.DstAddr = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::53")
	v6.SrcPort, v6.DstPort, v6.TCPFlags, v6.Proto, v6.Packets, v6.Bytes = 0, 32768, 0, 58, 1, 104
	unk := aggRecord()
	unk.Proto, unk.TCPFlags, unk.SrcPort, unk.DstPort = 253, 0, 0, 0
	write(t, p, aggRecord(), v6, unk)
	want := `{"event_type": "purge", "ip_src": "10.0.0.1", "ip_dst": "192.168.1.10", "port_src": 40000, "port_dst": 443, "tcp_flags": "26", "ip_proto": "tcp", "stamp_inserted": "2026-11-28 03:28:00", "stamp_updated": "2026-11-28 03:28:47", "packets": 11, "bytes": 5060}
{"event_type": "purge", "ip_src": "2001:db8::1", "ip_dst": "2001:db8:1::53", "port_src": 0, "port_dst": 32768, "tcp_flags": "0", "ip_proto": "ipv6-icmp", "stamp_inserted": "2026-11-28 03:28:00", "stamp_updated": "2026-11-28 03:28:47", "packets": 1, "bytes": 104}
{"event_type": "purge", "ip_src": "10.0.0.1", "ip_dst": "192.168.1.10", "port_src": 0, "port_dst": 0, "tcp_flags": "0", "ip_proto": "253", "stamp_inserted": "2026-11-28 03:28:00", "stamp_updated": "2026-11-28 03:28:47", "packets": 11, "bytes": 5060}
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func fullRecord() core.Record {
	return core.Record{
		SrcMAC: [6]byte{0x00, 0x1b, 0x21, 0xaa, 0xbb, 0x01}, DstMAC: [6]byte{0xf8, 0x0f, 0x6f, 0x00, 0x0c, 0xde}, VLAN: 100,
		SrcAS: 64512, DstAS: 15169, Exporter: netip.MustParseAddr("127.0.0.1"), InIface: 1, OutIface: 2,
		SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("192.168.1.10"), SrcMask: 24, DstMask: 16,
		SrcPort: 40000, DstPort: 443, TCPFlags: 24, Proto: 6, TOS: 0, SamplingRate: 0,
		Flows: 1, Packets: 10, Bytes: 5000,
		StampInserted: bin.UnixNano(), StampUpdated: updated.Add(8 * time.Second).UnixNano(),
		Present: core.FieldSrcMAC | core.FieldDstMAC | core.FieldVLAN | core.FieldSrcAS | core.FieldDstAS | core.FieldExporter |
			core.FieldInIface | core.FieldOutIface | core.FieldSrcAddr | core.FieldSrcNet | core.FieldDstAddr | core.FieldDstNet |
			core.FieldSrcMask | core.FieldDstMask | core.FieldSrcPort | core.FieldDstPort | core.FieldTCPFlags | core.FieldProto |
			core.FieldTOS | core.FieldSamplingRate | core.FieldFlows | core.FieldPackets | core.FieldBytes | core.FieldStamps,
	}
}

func TestJSONAllPrimitivesGolden(t *testing.T) {
	var buf bytes.Buffer
	p := newPrint(t, &Print{Format: "json", TimestampsUTC: true}, &buf)
	write(t, p, fullRecord())
	want := `{"event_type": "purge", "mac_src": "00:1b:21:aa:bb:01", "mac_dst": "f8:0f:6f:00:0c:de", "vlan": 100, "as_src": 64512, "as_dst": 15169, "peer_ip_src": "127.0.0.1", "iface_in": 1, "iface_out": 2, "ip_src": "10.0.0.1", "net_src": "10.0.0.0", "ip_dst": "192.168.1.10", "net_dst": "192.168.0.0", "mask_src": 24, "mask_dst": 16, "port_src": 40000, "port_dst": 443, "tcp_flags": "24", "ip_proto": "tcp", "tos": 0, "sampling_rate": 0, "stamp_inserted": "2026-11-28 03:28:00", "stamp_updated": "2026-11-28 03:28:55", "flows": 1, "packets": 10, "bytes": 5000}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestCSVAllPrimitivesGolden(t *testing.T) {
	var buf bytes.Buffer
	p := newPrint(t, &Print{Format: "csv", TimestampsUTC: true}, &buf)
	r := fullRecord()
	v6 := fullRecord()
	v6.SrcAddr, v6.DstAddr, v6.SrcMask, v6.DstMask = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::53"), 64, 48
	write(t, p, r, v6)
	want := `SRC_MAC,DST_MAC,VLAN,SRC_AS,DST_AS,PEER_SRC_IP,IN_IFACE,OUT_IFACE,SRC_IP,SRC_NET,DST_IP,DST_NET,SRC_MASK,DST_MASK,SRC_PORT,DST_PORT,TCP_FLAGS,PROTOCOL,TOS,SAMPLING_RATE,PACKETS,FLOWS,BYTES
00:1b:21:aa:bb:01,f8:0f:6f:00:0c:de,100,64512,15169,127.0.0.1,1,2,10.0.0.1,10.0.0.0,192.168.1.10,192.168.0.0,24,16,40000,443,24,tcp,0,0,10,1,5000
00:1b:21:aa:bb:01,f8:0f:6f:00:0c:de,100,64512,15169,127.0.0.1,1,2,2001:db8::1,2001:db8::,2001:db8:1::53,2001:db8:1::,64,48,40000,443,24,tcp,0,0,10,1,5000
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func unaggregated() core.Record {
	start := time.Date(2026, 11, 28, 3, 29, 52, 0, time.UTC)
	return core.Record{
		SrcMAC: [6]byte{0x00, 0x1b, 0x21, 0xaa, 0xbb, 0x01}, DstMAC: [6]byte{0xf8, 0x0f, 0x6f, 0x00, 0x0c, 0xde}, VLAN: 100,
		SrcAS: 64512, DstAS: 15169, Exporter: netip.MustParseAddr("127.0.0.1"), NextHop: netip.MustParseAddr("10.255.0.1"),
		InIface: 1, OutIface: 2,
		SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("192.168.1.10"), SrcMask: 24, DstMask: 16,
		SrcPort: 40000, DstPort: 443, TCPFlags: 24, Proto: 6, TOS: 0,
		Packets: 10, Bytes: 5000, SamplerID: 3, Direction: 1,
		Start: start.UnixNano(), End: start.Add(time.Second).UnixNano(), Received: time.Date(2026, 11, 28, 3, 31, 32, 912560000, time.UTC).UnixNano(),
		Present: core.FieldSrcMAC | core.FieldDstMAC | core.FieldVLAN | core.FieldSrcAS | core.FieldDstAS | core.FieldExporter | core.FieldNextHop |
			core.FieldInIface | core.FieldOutIface | core.FieldSrcAddr | core.FieldDstAddr |
			core.FieldSrcMask | core.FieldDstMask | core.FieldSrcPort | core.FieldDstPort | core.FieldTCPFlags | core.FieldProto |
			core.FieldTOS | core.FieldPackets | core.FieldBytes | core.FieldStart | core.FieldEnd | core.FieldSamplerID | core.FieldDirection,
	}
}

// The unaggregated golden is nfacctd's line for the same flow with aggregate
// "...,peer_dst_ip,timestamp_start,timestamp_end,timestamp_arrival" and
// use_ip_next_hop, without sampling_rate, flows and the stamps.
func TestJSONUnaggregatedGolden(t *testing.T) {
	var buf bytes.Buffer
	p := newPrint(t, &Print{Format: "json", TimestampsUTC: true}, &buf)
	write(t, p, unaggregated())
	want := `{"event_type": "purge", "mac_src": "00:1b:21:aa:bb:01", "mac_dst": "f8:0f:6f:00:0c:de", "vlan": 100, "as_src": 64512, "as_dst": 15169, "peer_ip_src": "127.0.0.1", "peer_ip_dst": "10.255.0.1", "iface_in": 1, "iface_out": 2, "ip_src": "10.0.0.1", "ip_dst": "192.168.1.10", "mask_src": 24, "mask_dst": 16, "port_src": 40000, "port_dst": 443, "tcp_flags": "24", "ip_proto": "tcp", "tos": 0, "timestamp_start": "2026-11-28 03:29:52.000000", "timestamp_end": "2026-11-28 03:29:53.000000", "timestamp_arrival": "2026-11-28 03:31:32.912560", "packets": 10, "bytes": 5000}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestUnaggregatedIPv6CSV(t *testing.T) {
	var buf bytes.Buffer
	p := newPrint(t, &Print{Format: "csv", TimestampsUTC: true}, &buf)
	r := core.Record{
		SrcAddr: netip.MustParseAddr("2001:db8::1"), DstAddr: netip.MustParseAddr("2001:db8:1::53"), NextHop: netip.MustParseAddr("fe80::1"),
		Proto: 58, Packets: 1, Bytes: 104, Start: bin.UnixNano() + 1500, End: bin.UnixNano() + 999_999_999,
		Present: core.FieldSrcAddr | core.FieldDstAddr | core.FieldNextHop | core.FieldProto | core.FieldPackets | core.FieldBytes | core.FieldStart | core.FieldEnd,
	}
	write(t, p, r)
	want := "PEER_DST_IP,SRC_IP,DST_IP,PROTOCOL,TIMESTAMP_START,TIMESTAMP_END,PACKETS,BYTES\n" +
		"fe80::1,2001:db8::1,2001:db8:1::53,ipv6-icmp,2026-11-28 03:28:00.000001,2026-11-28 03:28:00.999999,1,104\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestAbsentAddressPrintsZero(t *testing.T) {
	var buf bytes.Buffer
	p := newPrint(t, &Print{Format: "json", TimestampsUTC: true}, &buf)
	write(t, p, core.Record{Present: core.FieldSrcAddr | core.FieldExporter | core.FieldPackets})
	want := `{"event_type": "purge", "peer_ip_src": "0.0.0.0", "ip_src": "0.0.0.0", "packets": 0}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("got %s want %s", got, want)
	}
}

func TestOptionsRecordsSkipped(t *testing.T) {
	var buf bytes.Buffer
	p := newPrint(t, &Print{Format: "json"}, &buf)
	r := aggRecord()
	r.Flags = core.FlagOptions
	write(t, p, r)
	if buf.Len() != 0 {
		t.Errorf("options record printed: %s", buf.String())
	}
}

// Stamps follow the local zone unless timestamps_utc is set.
func TestLocalTime(t *testing.T) {
	old := time.Local
	time.Local = time.FixedZone("CET", 3600)
	defer func() { time.Local = old }()
	var buf bytes.Buffer
	p := newPrint(t, &Print{Format: "json"}, &buf)
	write(t, p, aggRecord())
	if got := buf.String(); !strings.Contains(got, `"stamp_inserted": "2026-11-28 04:28:00", "stamp_updated": "2026-11-28 04:28:47"`) {
		t.Errorf("local stamps: %s", got)
	}
	buf.Reset()
	p = newPrint(t, &Print{Format: "json", TimestampsUTC: true}, &buf)
	write(t, p, aggRecord())
	if got := buf.String(); !strings.Contains(got, `"stamp_inserted": "2026-11-28 03:28:00", "stamp_updated": "2026-11-28 03:28:47"`) {
		t.Errorf("utc stamps: %s", got)
	}
}

func TestCSVHeaderOnceAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "flows.csv")
	for i := 0; i < 2; i++ {
		p := &Print{Format: "csv", File: path, TimestampsUTC: true}
		if err := p.Init(core.NewEnv("print", "")); err != nil {
			t.Fatal(err)
		}
		if err := p.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		r := aggRecord()
		r.Packets = uint64(i + 1)
		write(t, p, r)
		// The batch is on disk when Write returns.
		if b, _ := os.ReadFile(path); strings.Count(string(b), "\n") != i+2 {
			t.Errorf("after write %d the file holds %q", i, b)
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	want := "SRC_IP,DST_IP,SRC_PORT,DST_PORT,TCP_FLAGS,PROTOCOL,PACKETS,BYTES\n" +
		"10.0.0.1,192.168.1.10,40000,443,26,tcp,1,5060\n" +
		"10.0.0.1,192.168.1.10,40000,443,26,tcp,2,5060\n"
	if string(b) != want {
		t.Errorf("file:\n%s\nwant\n%s", b, want)
	}
}

func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 28, 3, 59, 59, 0, time.UTC)
	p := &Print{Format: "json", File: filepath.Join(dir, "%Y/%m/flows-%Y%m%d-%H%M%S-%s-%%.jsonl"), TimestampsUTC: true}
	p.now = func() time.Time { return now }
	if err := p.Init(core.NewEnv("print", "")); err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, p, aggRecord())
	write(t, p, aggRecord())
	now = now.Add(time.Second)
	write(t, p, aggRecord())
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(dir, "2026/11/flows-20261128-035959-1795838399-%.jsonl")
	b := filepath.Join(dir, "2026/11/flows-20261128-040000-1795838400-%.jsonl")
	if l := readLines(t, a); len(l) != 2 {
		t.Errorf("%s: %d lines, want 2", a, len(l))
	}
	if l := readLines(t, b); len(l) != 1 {
		t.Errorf("%s: %d lines, want 1", b, len(l))
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestBadConfig(t *testing.T) {
	p := &Print{Format: "xml"}
	err := p.Init(core.NewEnv("print", ""))
	if err == nil || !strings.Contains(err.Error(), `format "xml" is not supported`) {
		t.Errorf("bad format: %v", err)
	}
	p = &Print{Format: "json", File: "flows-%Q.json"}
	if err := p.Init(core.NewEnv("print", "")); err == nil || !strings.Contains(err.Error(), "%Q") {
		t.Errorf("bad directive: %v", err)
	}
	p = &Print{Format: "CSV"}
	if err := p.Init(core.NewEnv("print", "")); err != nil || !p.csv {
		t.Errorf("CSV: %v", err)
	}
}

func TestRegistered(t *testing.T) {
	pl, ok := registry.Lookup(registry.Outputs, "print")
	if !ok {
		t.Fatal("outputs.print not registered")
	}
	if !strings.HasPrefix(pl.Sample, "[[outputs.print]]") {
		t.Errorf("sample starts with %q", pl.Sample[:20])
	}
	if p, ok := pl.Factory().(*Print); !ok || p.Format != "json" {
		t.Errorf("factory = %#v", pl.Factory())
	}
}

func TestNoAllocs(t *testing.T) {
	p := &Print{Format: "json", TimestampsUTC: true, stdout: discard{}}
	if err := p.Init(core.NewEnv("test", "")); err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	b := core.NewBatch()
	b.Records = append(b.Records, fullRecord(), aggRecord(), unaggregated())
	for _, csv := range []bool{false, true} {
		p.csv = csv
		if n := testing.AllocsPerRun(100, func() { _ = p.Write(ctx, b) }); n != 0 {
			t.Errorf("csv=%v: %v allocs per Write", csv, n)
		}
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

func benchPrint(b *testing.B, format string) {
	path := filepath.Join(b.TempDir(), "out")
	if err := os.Symlink(os.DevNull, path); err != nil {
		b.Fatal(err)
	}
	p := &Print{Format: format, File: path, TimestampsUTC: true}
	if err := p.Init(core.NewEnv("test", "")); err != nil {
		b.Fatal(err)
	}
	if err := p.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	batch := core.NewBatch()
	for i := 0; i < 1000; i++ {
		r := aggRecord()
		r.SrcPort = uint16(i)
		r.Bytes = uint64(i * 1500)
		batch.Records = append(batch.Records, r)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch.Records))/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkPrintJSON(b *testing.B) { benchPrint(b, "json") }
func BenchmarkPrintCSV(b *testing.B)  { benchPrint(b, "csv") }
