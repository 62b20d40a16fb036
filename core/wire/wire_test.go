package wire

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"github.com/flowline/flowline/core"
)

// randomRecords builds n records with every field set from rng, mixing IPv4,
// IPv6, constant and varying columns and a few extensions.
func randomRecords(rng *rand.Rand, n int) []core.Record {
	recs := make([]core.Record, n)
	exporter := netip.MustParseAddr("192.0.2.1")
	for i := range recs {
		r := &recs[i]
		r.Exporter = exporter
		r.ExporterPort = 2055
		r.Version = 10
		r.Domain = rng.Uint32()
		r.TemplateID = uint16(256 + rng.IntN(3))
		r.Flags = core.Flags(rng.IntN(4))
		r.Proto = uint8(rng.IntN(256))
		r.TCPFlags = uint8(rng.IntN(256))
		r.TOS = uint8(rng.IntN(256))
		r.SrcMask, r.DstMask = uint8(rng.IntN(33)), uint8(rng.IntN(129))
		r.Direction = uint8(rng.IntN(2))
		r.SrcPort, r.DstPort, r.VLAN = uint16(rng.Uint32()), uint16(rng.Uint32()), uint16(rng.IntN(4096))
		if rng.IntN(3) == 0 {
			var a, b [16]byte
			for j := range a {
				a[j], b[j] = byte(rng.Uint32()), byte(rng.Uint32())
			}
			r.SrcAddr, r.DstAddr = netip.AddrFrom16(a), netip.AddrFrom16(b)
		} else {
			r.SrcAddr = netip.AddrFrom4([4]byte{10, byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
			r.DstAddr = netip.AddrFrom4([4]byte{172, 16, byte(rng.Uint32()), byte(rng.Uint32())})
		}
		if rng.IntN(2) == 0 {
			r.NextHop = netip.MustParseAddr("198.51.100.7")
		}
		r.SrcMAC = [6]byte{1, 2, 3, 4, 5, byte(i)}
		r.SrcAS, r.DstAS, r.InIface, r.OutIface = rng.Uint32(), rng.Uint32(), rng.Uint32(), rng.Uint32()
		r.Tag, r.Tag2 = uint32(rng.IntN(10)), rng.Uint32()
		r.Packets, r.Bytes, r.Flows = rng.Uint64(), rng.Uint64N(1<<40), 1
		r.SamplingRate, r.SamplerID = uint32(rng.IntN(1000)), uint32(rng.IntN(3))
		r.Start = 1_700_000_000_000_000_000 + rng.Int64N(1e12)
		r.End = r.Start + rng.Int64N(1e10)
		r.Received = r.End + 5
		r.StampInserted, r.StampUpdated = 1_700_000_000_000_000_000, 1_700_000_060_000_000_000
		r.Present = core.Field(rng.Uint64())
		if rng.IntN(10) == 0 {
			r.Ext = []core.Extension{{Enterprise: 9, Type: 12235, Value: []byte("vendor")}, {Type: 95, Value: []byte{1, 2, 3}}}
		}
	}
	return recs
}

func TestRecordsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 1000, 8192} {
		recs := randomRecords(rng, n)
		data := AppendRecords(nil, uint64(n)+7, recs)
		b := core.NewBatch()
		id, err := DecodeRecords(b, data)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if id != uint64(n)+7 {
			t.Errorf("n=%d: id %d", n, id)
		}
		if len(b.Records) != n {
			t.Fatalf("n=%d: decoded %d records", n, len(b.Records))
		}
		for i := range recs {
			if !reflect.DeepEqual(recs[i], b.Records[i]) {
				t.Fatalf("n=%d record %d:\n got %+v\nwant %+v", n, i, b.Records[i], recs[i])
			}
		}
		b.Release()
	}
}

// An aggregated batch shares exporter, version and bins: the encoding must
// cost far less than the 256-byte struct and JSON's ~300 bytes.
func TestRecordsCompact(t *testing.T) {
	recs := make([]core.Record, 8192)
	for i := range recs {
		r := &recs[i]
		r.Exporter = netip.MustParseAddr("192.0.2.1")
		r.Version = 9
		r.SrcAddr = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		r.DstAddr = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		r.SrcPort, r.DstPort, r.Proto = uint16(1024+i), 443, 6
		r.Packets, r.Bytes, r.Flows = uint64(1+i%50), uint64(64+i%50*1400), 1
		r.StampInserted, r.StampUpdated = 1_700_000_000e9, 1_700_000_060e9
		r.Present = core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldProto | core.FieldPackets | core.FieldBytes | core.FieldStamps
	}
	data := AppendRecords(nil, 1, recs)
	per := float64(len(data)) / float64(len(recs))
	t.Logf("%.1f bytes per aggregated 5-tuple record", per)
	if per > 24 {
		t.Errorf("%.1f bytes per record: want at most 24", per)
	}
}

func TestPacketsRoundTrip(t *testing.T) {
	b := core.NewBatch()
	exp4 := netip.MustParseAddrPort("192.0.2.1:2055")
	exp6 := netip.MustParseAddrPort("[2001:db8::1]:9995")
	for i := range 300 {
		start := len(b.Arena)
		b.Arena = append(b.Arena, make([]byte, 1+i%1400)...)
		b.Arena[start] = byte(i)
		p := core.Packet{Data: b.Arena[start:], Exporter: exp4, Received: 1_700_000_000e9 + int64(i), Input: "edge"}
		if i%3 == 0 {
			p.Exporter, p.Input = exp6, "replica"
		}
		b.Packets = append(b.Packets, p)
	}
	data := AppendPackets(nil, 42, b.Packets)
	out := core.NewBatch()
	id, err := DecodePackets(out, data)
	if err != nil || id != 42 {
		t.Fatalf("id %d err %v", id, err)
	}
	if !reflect.DeepEqual(b.Packets, out.Packets) {
		t.Fatal("packets differ after a round trip")
	}
	if _, err := DecodeRecords(out, data); err == nil {
		t.Error("a packet batch decoded as records")
	}
}

func TestDecodeRefusesBadInput(t *testing.T) {
	recs := randomRecords(rand.New(rand.NewPCG(3, 4)), 100)
	data := AppendRecords(nil, 9, recs)
	b := core.NewBatch()
	for cut := range len(data) {
		if _, err := DecodeRecords(b, data[:cut]); err == nil {
			t.Fatalf("truncated at %d of %d: no error", cut, len(data))
		}
		if len(b.Records) != 0 {
			t.Fatalf("truncated at %d: %d records left in the batch", cut, len(b.Records))
		}
	}
	if _, err := DecodeRecords(b, append(append([]byte{}, data...), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	other := append([]byte{}, data...)
	other[3] = Version + 1
	if _, err := DecodeRecords(b, other); !errors.Is(err, ErrFormat) {
		t.Errorf("version %d: %v", Version+1, err)
	}
	huge := appendHeader(nil, KindRecords, 1, MaxCount+1)
	if _, err := DecodeRecords(b, huge); !errors.Is(err, ErrFormat) {
		t.Errorf("count beyond MaxCount: %v", err)
	}
}

func FuzzDecodeRecords(f *testing.F) {
	f.Add(AppendRecords(nil, 1, randomRecords(rand.New(rand.NewPCG(5, 6)), 5)))
	f.Add(AppendRecords(nil, 2, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := core.NewBatch()
		defer b.Release()
		id, err := DecodeRecords(b, data)
		if err != nil {
			return
		}
		// What decodes must encode to something that decodes the same.
		again := core.NewBatch()
		defer again.Release()
		id2, err := DecodeRecords(again, AppendRecords(nil, id, b.Records))
		if err != nil || id2 != id || !reflect.DeepEqual(b.Records, again.Records) {
			t.Fatalf("re-encoding changed the batch: %v", err)
		}
	})
}

func FuzzDecodePackets(f *testing.F) {
	p := []core.Packet{{Data: []byte{0, 9, 0, 1}, Exporter: netip.MustParseAddrPort("192.0.2.1:2055"), Received: 5, Input: "netflow"}}
	f.Add(AppendPackets(nil, 1, p))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := core.NewBatch()
		defer b.Release()
		_, _ = DecodePackets(b, data)
	})
}

func BenchmarkAppendRecords(b *testing.B) {
	recs := randomRecords(rand.New(rand.NewPCG(7, 8)), 8192)
	buf := AppendRecords(nil, 1, recs)
	b.SetBytes(int64(len(recs)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRecords(buf[:0], 1, recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}

func BenchmarkDecodeRecords(b *testing.B) {
	recs := randomRecords(rand.New(rand.NewPCG(7, 8)), 8192)
	data := AppendRecords(nil, 1, recs)
	batch := core.NewBatch()
	b.ReportAllocs()
	for b.Loop() {
		batch.Records = batch.Records[:0]
		batch.Arena = batch.Arena[:0]
		if _, err := DecodeRecords(batch, data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}

// aggregatedRecords is what an aggregate emits: a 5-tuple key, one exporter
// and one bin.
func aggregatedRecords(n int) []core.Record {
	recs := make([]core.Record, n)
	for i := range recs {
		r := &recs[i]
		r.Exporter = netip.MustParseAddr("192.0.2.1")
		r.Version = 9
		r.SrcAddr = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		r.DstAddr = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		r.SrcPort, r.DstPort, r.Proto = uint16(1024+i), 443, 6
		r.Packets, r.Bytes, r.Flows = uint64(1+i%50), uint64(64+i%50*1400), 1
		r.StampInserted, r.StampUpdated = 1_700_000_000e9, 1_700_000_060e9
		r.Present = core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldProto | core.FieldPackets | core.FieldBytes | core.FieldStamps
	}
	return recs
}

func BenchmarkAggregatedRoundTrip(b *testing.B) {
	recs := aggregatedRecords(8192)
	buf := AppendRecords(nil, 1, recs)
	batch := core.NewBatch()
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRecords(buf[:0], 1, recs)
		batch.Records = batch.Records[:0]
		if _, err := DecodeRecords(batch, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
