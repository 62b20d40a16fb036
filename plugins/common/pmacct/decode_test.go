package pmacct

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
)

func sampleRecord() core.Record {
	return core.Record{
		Exporter: netip.MustParseAddr("192.0.2.1"), SrcAddr: netip.MustParseAddr("10.0.0.1"),
		DstAddr: netip.MustParseAddr("2001:db8::2"), SrcMAC: [6]byte{0, 1, 2, 3, 4, 0xab},
		SrcPort: 1234, DstPort: 443, Proto: 17, TCPFlags: 0x1b, TOS: 8, VLAN: 10, SrcAS: 65000, DstAS: 65001,
		InIface: 3, OutIface: 4, SrcMask: 24, DstMask: 64, SamplingRate: 100,
		Packets: 12, Bytes: 3400, Flows: 2,
		StampInserted: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC).UnixNano(),
		StampUpdated:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(),
		Present: core.FieldExporter | core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcMAC | core.FieldSrcPort |
			core.FieldDstPort | core.FieldProto | core.FieldTCPFlags | core.FieldTOS | core.FieldVLAN | core.FieldSrcAS |
			core.FieldDstAS | core.FieldInIface | core.FieldOutIface | core.FieldSrcMask | core.FieldDstMask |
			core.FieldSamplingRate | core.FieldPackets | core.FieldBytes | core.FieldFlows | core.FieldStamps,
	}
}

// What Encoder writes, Decoder reads back to the same record.
func TestDecodeRoundTrip(t *testing.T) {
	r := sampleRecord()
	enc := Encoder{Loc: time.UTC}
	line := enc.AppendJSON(nil, &r)
	var got core.Record
	dec := Decoder{Loc: time.UTC}
	ev, err := dec.Decode(line, &got)
	if err != nil || ev != EventPurge {
		t.Fatalf("Decode(%s) = %v, %v", line, ev, err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("got  %+v\nwant %+v\nline %s", got, r, line)
	}
	if n := testing.AllocsPerRun(100, func() { dec.Decode(line, &got) }); n > 1 {
		t.Errorf("%v allocations per record (the IPv6 address may take one)", n)
	}
}

func TestDecodeErrors(t *testing.T) {
	dec := Decoder{Loc: time.UTC}
	for _, c := range []struct {
		in   string
		want error
	}{
		{`not json`, ErrNotJSON},
		{`{"event_type": "purge", "packets": 1`, ErrNotJSON},
		{`{}`, ErrNotJSON},
		{`{"event_type": "purge", "packets": "1"}`, ErrWrongType},
		{`{"event_type": "purge", "packets": 1.5}`, ErrWrongType},
		{`{"event_type": "purge", "ip_src": 5}`, ErrWrongType},
		{`{"event_type": "purge", "ip_src": "10.0.0.256"}`, ErrBadValue},
		{`{"event_type": "purge", "port_src": 70000}`, ErrBadValue},
		{`{"event_type": "purge", "stamp_inserted": "yesterday"}`, ErrBadValue},
		{`{"event_type": "bgp"}`, ErrUnknownEvent},
	} {
		var r core.Record
		if _, err := dec.Decode([]byte(c.in), &r); !errors.Is(err, c.want) {
			t.Errorf("Decode(%s) = %v, want %v", c.in, err, c.want)
		}
	}
	var r core.Record
	ev, err := dec.Decode([]byte(`{"event_type": "purge_close", "writer_id": "x/1", "purged_entries": 3, "extra": {"a": [1, "b"]}}`), &r)
	if err != nil || ev != EventMarker {
		t.Errorf("marker: %v, %v", ev, err)
	}
	// Keys Flowline has no field for are skipped.
	if _, err := dec.Decode([]byte(`{"event_type": "purge", "etype": "800", "class": null, "packets": 3}`), &r); err != nil || r.Packets != 3 {
		t.Errorf("unknown keys: %v, %+v", err, r)
	}
}

// FuzzDecode: any bytes give a record or an error, never a panic; what
// decodes encodes and decodes again to the same record.
func FuzzDecode(f *testing.F) {
	r := sampleRecord()
	enc := Encoder{Loc: time.UTC}
	f.Add(enc.AppendJSON(nil, &r))
	f.Add([]byte(`{"event_type": "purge_init", "writer_id": "a/1"}`))
	f.Add([]byte(`{"event_type": "purge", "ip_src": "::1", "x": [{"y": "\""}]}`))
	dec := Decoder{Loc: time.UTC}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r core.Record
		ev, err := dec.Decode(b, &r)
		if err != nil || ev != EventPurge {
			return
		}
		line := enc.AppendJSON(nil, &r)
		var again core.Record
		if _, err := dec.Decode(line, &again); err != nil {
			t.Fatalf("re-decoding %s: %v", line, err)
		}
	})
}

// BenchmarkDecode reads one pmacct JSON line into a record.
func BenchmarkDecode(b *testing.B) {
	r := sampleRecord()
	r.DstAddr = netip.MustParseAddr("10.0.0.2")
	enc := Encoder{Loc: time.UTC}
	line := enc.AppendJSON(nil, &r)
	dec := Decoder{Loc: time.UTC}
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := dec.Decode(line, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode writes one record as a pmacct JSON line.
func BenchmarkEncode(b *testing.B) {
	r := sampleRecord()
	enc := Encoder{Loc: time.UTC}
	var line []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		line = enc.AppendJSON(line[:0], &r)
	}
}

// BenchmarkEncodeFlows writes unaggregated flows as JSON lines: start, end
// and arrival stamps spread over two minutes, as exporters send them.
func BenchmarkEncodeFlows(b *testing.B) {
	base := sampleRecord()
	base.Present &^= core.FieldStamps
	base.Present |= core.FieldStart | core.FieldEnd
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC).UnixNano()
	recs := make([]core.Record, 4096)
	for i := range recs {
		r := base
		r.Start = t0 + int64(i*7919%120)*1e9 + int64(i)*1e3
		r.End = r.Start + int64(i%30)*1e9
		r.Received = t0 + 125e9
		recs[i] = r
	}
	enc := Encoder{Loc: time.UTC}
	var line []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		line = enc.AppendJSON(line[:0], &recs[i&(len(recs)-1)])
	}
}
