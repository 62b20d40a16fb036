package netflow

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
)

func mustDecode(t *testing.T, d *Decoder, p core.Packet, b *core.Batch) DecodeStats {
	t.Helper()
	st, err := d.Decode(p, b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return st
}

func TestV9FiveTuple(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	b := &core.Batch{}
	data := v9Packet(1000000, testSecs, 7, set(0, v9Tpl(300, fiveTuple...)), set(300, fiveTupleRec(1), fiveTupleRec(2), []byte{0, 0}))
	st := mustDecode(t, d, pkt(exporterA, data), b)
	if st.Records != 2 || st.Templates != 1 || len(b.Records) != 2 {
		t.Fatalf("stats %+v, %d records", st, len(b.Records))
	}
	r := b.Records[1]
	if r.SrcAddr != netip.MustParseAddr("10.0.0.2") || r.DstAddr != netip.MustParseAddr("192.168.1.2") {
		t.Errorf("addresses %v %v", r.SrcAddr, r.DstAddr)
	}
	if !r.SrcAddr.Is4() {
		t.Errorf("src address is not plain IPv4: %v", r.SrcAddr)
	}
	if r.SrcPort != 1026 || r.DstPort != 443 || r.Proto != 6 || r.TOS != 0x10 || r.TCPFlags != 0x1b {
		t.Errorf("ports/proto/tos/flags %d %d %d %d %d", r.SrcPort, r.DstPort, r.Proto, r.TOS, r.TCPFlags)
	}
	if r.InIface != 3 || r.OutIface != 7 || r.Packets != 12 || r.Bytes != 18000 || r.Flows != 1 {
		t.Errorf("ifaces/counters %d %d %d %d %d", r.InIface, r.OutIface, r.Packets, r.Bytes, r.Flows)
	}
	// uptime 1000000 ms; first 900000 -> 100 s before export; last 995000 -> 5 s.
	if want := int64(testSecs-100) * 1e9; r.Start != want {
		t.Errorf("start %d want %d", r.Start, want)
	}
	if want := int64(testSecs-5) * 1e9; r.End != want {
		t.Errorf("end %d want %d", r.End, want)
	}
	want := core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldProto |
		core.FieldTOS | core.FieldTCPFlags | core.FieldInIface | core.FieldOutIface | core.FieldPackets |
		core.FieldBytes | core.FieldStart | core.FieldEnd | core.FieldExporter
	if r.Present != want {
		t.Errorf("present %b want %b", r.Present, want)
	}
	if r.Exporter != exporterA.Addr() || r.ExporterPort != 4739 || r.Domain != 7 || r.Version != 9 || r.TemplateID != 300 || r.Received != testReceived {
		t.Errorf("header fields %+v", r)
	}
}

func TestV9UptimeWrap(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	b := &core.Batch{}
	// sysUptime wrapped to 1000 ms; first switched 0xFFFFFC18 = 2000 ms before it.
	data := v9Packet(1000, testSecs, 1, set(0, v9Tpl(300, fld{22, 4, 0}, fld{21, 4, 0})), set(300, u32(0xFFFFFC18), u32(1500)))
	mustDecode(t, d, pkt(exporterA, data), b)
	r := b.Records[0]
	if want := int64(testSecs)*1e9 - 2000*1e6; r.Start != want {
		t.Errorf("start %d want %d", r.Start, want)
	}
	if want := int64(testSecs)*1e9 + 500*1e6; r.End != want {
		t.Errorf("end %d want %d", r.End, want)
	}
}

func TestIPFIXFiveTupleAndTimes(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	b := &core.Batch{}
	ntp := uint64(testSecs+2208988800)<<32 | 1<<31 // +0.5 s
	fields := []fld{{27, 16, 0}, {28, 16, 0}, {150, 4, 0}, {151, 4, 0}, {154, 8, 0}, {156, 8, 0}}
	rec := cat(netip.MustParseAddr("2001:db8::1").AsSlice(), netip.MustParseAddr("2001:db8::2").AsSlice(), u32(testSecs-10), u32(testSecs-1), u64(ntp), u64(ntp))
	data := ipfixPacket(testSecs, 5, set(2, ipfixTpl(400, fields...)), set(400, rec))
	mustDecode(t, d, pkt(exporterA, data), b)
	r := b.Records[0]
	if r.SrcAddr != netip.MustParseAddr("2001:db8::1") || r.DstAddr != netip.MustParseAddr("2001:db8::2") {
		t.Errorf("v6 addresses %v %v", r.SrcAddr, r.DstAddr)
	}
	// 154 then 156 override 150 (last wins); both are testSecs+0.5.
	if want := int64(testSecs)*1e9 + 5e8; r.Start != want {
		t.Errorf("start %d want %d", r.Start, want)
	}
	if want := int64(testSecs-1) * 1e9; r.End != want {
		t.Errorf("end %d want %d", r.End, want)
	}
	// 22/21 relative to 160 systemInitTimeMilliseconds.
	b = &core.Batch{}
	data = ipfixPacket(testSecs, 5, set(2, ipfixTpl(401, fld{22, 4, 0}, fld{21, 4, 0}, fld{160, 8, 0})), set(401, u32(1000), u32(3000), u64(testSecs*1000)))
	mustDecode(t, d, pkt(exporterA, data), b)
	r = b.Records[0]
	if r.Start != (testSecs*1000+1000)*1e6 || r.End != (testSecs*1000+3000)*1e6 {
		t.Errorf("relative-to-160 start %d end %d", r.Start, r.End)
	}
}

func TestCounterPriorityAndReducedSize(t *testing.T) {
	d := NewDecoder(DecoderConfig{KeepExtensions: true})
	b := &core.Batch{}
	// 23 OUT_BYTES before 1 IN_BYTES: 1 wins; counters in 3 and 4 bytes,
	// in iface in 2 bytes; ASA 231 with no 1/85 in a second template.
	tpl := v9Tpl(300, fld{23, 4, 0}, fld{1, 3, 0}, fld{2, 4, 0}, fld{10, 2, 0}, fld{16, 2, 0})
	tpl2 := v9Tpl(301, fld{231, 4, 0}, fld{298, 8, 0}, fld{24, 4, 0})
	data := v9Packet(1, testSecs, 1, set(0, tpl, tpl2),
		set(300, u32(999), []byte{1, 2, 3}, u32(70000), u16(513), u16(64512)),
		set(301, u32(4242), u64(1<<40), u32(5)))
	mustDecode(t, d, pkt(exporterA, data), b)
	r := b.Records[0]
	if r.Bytes != 0x010203 || r.Packets != 70000 || r.InIface != 513 || r.SrcAS != 64512 {
		t.Errorf("reduced size: bytes %d packets %d iface %d as %d", r.Bytes, r.Packets, r.InIface, r.SrcAS)
	}
	if len(r.Ext) != 1 || r.Ext[0].Type != 23 || string(r.Ext[0].Value) != string(u32(999)) {
		t.Errorf("OUT_BYTES should be an extension: %+v", r.Ext)
	}
	r = b.Records[1]
	if r.Bytes != 4242 || r.Packets != 1<<40 {
		t.Errorf("ASA initiator counters: bytes %d packets %d", r.Bytes, r.Packets)
	}
}

func TestZeroLengthFieldsAndPadding(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	b := &core.Batch{}
	tpl := v9Tpl(300, fld{8, 4, 0}, fld{0, 0, 0}, fld{4, 1, 0}, fld{0, 0, 0})
	// Three records of 5 bytes and 3 bytes of padding; then a zero-filled tail.
	data := v9Packet(1, testSecs, 1, set(0, tpl), set(300, []byte{1, 1, 1, 1, 6, 2, 2, 2, 2, 17, 3, 3, 3, 3, 1, 0, 0, 0}), make([]byte, 40))
	st := mustDecode(t, d, pkt(exporterA, data), b)
	if st.Records != 3 || b.Records[2].Proto != 1 || b.Records[1].SrcAddr != netip.MustParseAddr("2.2.2.2") {
		t.Fatalf("stats %+v records %+v", st, b.Records)
	}
	// A template made only of zero-length fields decodes nothing, without looping.
	data = v9Packet(1, testSecs, 1, set(0, v9Tpl(301, fld{0, 0, 0})), set(301, make([]byte, 8)))
	st = mustDecode(t, d, pkt(exporterA, data), b)
	if st.Records != 0 {
		t.Errorf("zero-length template produced %d records", st.Records)
	}
}

func TestIPFIXVariableLengthAndEnterprise(t *testing.T) {
	d := NewDecoder(DecoderConfig{KeepExtensions: true})
	b := &core.Batch{}
	tpl := ipfixTpl(500, fld{8, 4, 0}, fld{462, varLen, 5951}, fld{82, varLen, 0}, fld{4, 1, 0})
	long := strings.Repeat("x", 300)
	rec1 := cat([]byte{1, 2, 3, 4}, []byte{3}, []byte("abc"), []byte{255}, u16(300), []byte(long), []byte{6})
	rec2 := cat([]byte{5, 6, 7, 8}, []byte{0}, []byte{1}, []byte("e"), []byte{17})
	data := ipfixPacket(testSecs, 1, set(2, tpl), set(500, rec1, rec2, []byte{0, 0}))
	st := mustDecode(t, d, pkt(exporterA, data), b)
	if st.Records != 2 {
		t.Fatalf("records %d", st.Records)
	}
	r := b.Records[0]
	if r.Proto != 6 || r.SrcAddr != netip.MustParseAddr("1.2.3.4") || len(r.Ext) != 2 {
		t.Fatalf("record 0: %+v", r)
	}
	if r.Ext[0].Enterprise != 5951 || r.Ext[0].Type != 462 || string(r.Ext[0].Value) != "abc" {
		t.Errorf("enterprise ext %+v", r.Ext[0])
	}
	if r.Ext[1].Type != 82 || string(r.Ext[1].Value) != long {
		t.Errorf("long varlen ext len %d", len(r.Ext[1].Value))
	}
	if r2 := b.Records[1]; r2.Proto != 17 || len(r2.Ext[0].Value) != 0 || string(r2.Ext[1].Value) != "e" {
		t.Errorf("record 1 %+v", r2)
	}
	// A variable-length field running past the set is an error, no panic.
	bad := cat([]byte{1, 2, 3, 4}, []byte{200}, []byte("short"))
	_, err := d.Decode(pkt(exporterA, ipfixPacket(testSecs, 1, set(500, bad))), b)
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("want ErrMalformed, got %v", err)
	}
}

func TestIPFIXWithdrawal(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var seen []TemplateSet
	d.OnTemplate = func(ts TemplateSet) { seen = append(seen, ts) }
	b := &core.Batch{}
	mustDecode(t, d, pkt(exporterA, ipfixPacket(testSecs, 1, set(2, ipfixTpl(600, fld{8, 4, 0}), ipfixTpl(601, fld{12, 4, 0})), set(3, ipfixOptTpl(602, 1, fld{302, 4, 0}, fld{34, 4, 0})))), b)
	if len(d.Templates()) != 3 || len(seen) != 3 {
		t.Fatalf("templates %d, callbacks %d", len(d.Templates()), len(seen))
	}
	// Refresh does not call OnTemplate.
	mustDecode(t, d, pkt(exporterA, ipfixPacket(testSecs, 1, set(2, ipfixTpl(600, fld{8, 4, 0})))), b)
	if len(seen) != 3 {
		t.Errorf("refresh called OnTemplate")
	}
	st := mustDecode(t, d, pkt(exporterA, ipfixPacket(testSecs, 1, set(2, ipfixTpl(600)))), b)
	if st.Withdrawn != 1 || len(d.Templates()) != 2 || !seen[len(seen)-1].Withdrawn || seen[len(seen)-1].ID != 600 {
		t.Fatalf("withdraw one: %+v, %d templates", st, len(d.Templates()))
	}
	// Data for the withdrawn template is queued, not decoded.
	st = mustDecode(t, d, pkt(exporterA, ipfixPacket(testSecs, 1, set(600, []byte{1, 2, 3, 4}))), b)
	if st.Records != 0 || st.Queued != 1 {
		t.Errorf("after withdrawal: %+v", st)
	}
	// Withdraw all data templates (id 2 in set 2): the options template stays.
	st = mustDecode(t, d, pkt(exporterA, ipfixPacket(testSecs, 1, set(2, ipfixTpl(2)))), b)
	if st.Withdrawn != 1 || len(d.Templates()) != 1 || !d.Templates()[0].Options {
		t.Fatalf("withdraw all: %+v %+v", st, d.Templates())
	}
	st = mustDecode(t, d, pkt(exporterA, ipfixPacket(testSecs, 1, set(3, cat(u16(3), u16(0))))), b)
	if st.Withdrawn != 1 || len(d.Templates()) != 0 {
		t.Fatalf("withdraw all options: %+v", st)
	}
}

func TestLyingLengths(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	b := &core.Batch{}
	good := set(300, fiveTupleRec(1))
	tpl := set(0, v9Tpl(300, fiveTuple...))
	cases := []struct {
		name string
		data []byte
		recs int
	}{
		{"v9 set length < 4", v9Packet(1, testSecs, 1, tpl, good, cat(u16(300), u16(2), u32(5))), 1},
		{"v9 set runs past end", v9Packet(1, testSecs, 1, tpl, good, cat(u16(300), u16(200), fiveTupleRec(2))), 2},
		{"v9 template runs past end", v9Packet(1, testSecs, 1, set(0, cat(u16(301), u16(50), u32(0x00080004)))), 0},
		{"v9 short header", []byte{0, 9, 0, 1}, 0},
		{"ipfix message length < 16", cat(u16(10), u16(8), make([]byte, 12)), 0},
		{"ipfix options scope > count", ipfixPacket(1, 1, set(3, cat(u16(700), u16(1), u16(2), u16(8), u16(4)))), 0},
		{"unknown version", []byte{0, 7, 0, 0}, 0},
		{"one byte", []byte{5}, 0},
	}
	for _, c := range cases {
		b.Records = b.Records[:0]
		_, err := d.Decode(pkt(exporterA, c.data), b)
		if err == nil {
			t.Errorf("%s: no error", c.name)
		}
		if len(b.Records) != c.recs {
			t.Errorf("%s: %d records, want %d", c.name, len(b.Records), c.recs)
		}
	}
	// The v9 header count is ignored: count 0 with two records.
	data := v9Packet(1, testSecs, 1, tpl, good)
	data[2], data[3] = 0, 0
	b.Records = b.Records[:0]
	if st := mustDecode(t, d, pkt(exporterA, data), b); st.Records != 1 {
		t.Errorf("v9 count 0: %+v", st)
	}
	// IPFIX message length larger than the datagram: the datagram wins and
	// the set running past it is reported.
	data = ipfixPacket(testSecs, 1, set(2, ipfixTpl(400, fld{8, 4, 0})), set(400, u32(1), u32(2)))
	data = data[:len(data)-2]
	b.Records = b.Records[:0]
	if _, err := d.Decode(pkt(exporterA, data), b); err == nil || len(b.Records) != 1 {
		t.Errorf("ipfix truncated: err %v, %d records", err, len(b.Records))
	}
	// IPFIX message length shorter than the datagram: trailing bytes ignored.
	data = cat(ipfixPacket(testSecs, 1, set(400, u32(1))), []byte{0xff, 0xff, 0xff, 0xff, 0xff})
	b.Records = b.Records[:0]
	if st := mustDecode(t, d, pkt(exporterA, data), b); st.Records != 1 {
		t.Errorf("ipfix trailing: %+v", st)
	}
}

func v5Packet(count int, recs int, sampling uint16) []byte {
	h := cat(u16(5), u16(uint16(count)), u32(100000), u32(testSecs), u32(0), u32(1), []byte{1, 2}, u16(sampling))
	for i := 0; i < recs; i++ {
		h = cat(h, []byte{10, 0, 0, byte(i)}, []byte{10, 0, 1, byte(i)}, []byte{10, 0, 2, 1}, u16(1), u16(2),
			u32(10), u32(1000), u32(90000), u32(99000), u16(1000), u16(80), []byte{0, 0x12, 6, 4},
			u16(65001), u16(65002), []byte{24, 16}, u16(0))
	}
	return h
}

func TestV5(t *testing.T) {
	b := &core.Batch{}
	n, err := DecodeV5(v5Packet(2, 2, 0x4000|100), exporterA, testReceived, b)
	if err != nil || n != 2 {
		t.Fatalf("n %d err %v", n, err)
	}
	r := b.Records[1]
	if r.SrcAddr != netip.MustParseAddr("10.0.0.1") || r.DstPort != 80 || r.Proto != 6 || r.TCPFlags != 0x12 || r.TOS != 4 ||
		r.SrcAS != 65001 || r.DstMask != 16 || r.Bytes != 1000 || r.Packets != 10 || r.Domain != 0x0102 || r.SamplingRate != 100 {
		t.Errorf("v5 record %+v", r)
	}
	if r.Start != int64(testSecs-10)*1e9 || r.End != int64(testSecs-1)*1e9 {
		t.Errorf("v5 times %d %d", r.Start, r.End)
	}
	// Count larger than the payload: the records present, and an error.
	b.Records = b.Records[:0]
	n, err = DecodeV5(v5Packet(30, 3, 0), exporterA, testReceived, b)
	if err == nil || n != 3 || len(b.Records) != 3 || b.Records[0].Has(core.FieldSamplingRate) {
		t.Errorf("lying count: n %d err %v", n, err)
	}
	// Through the Decoder, with trailing bytes.
	d := NewDecoder(DecoderConfig{})
	b.Records = b.Records[:0]
	if st := mustDecode(t, d, pkt(exporterA, cat(v5Packet(2, 2, 0), make([]byte, 6))), b); st.Records != 2 {
		t.Errorf("decoder v5 %+v", st)
	}
}

func TestSamplerTableFromOptions(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	b := &core.Batch{}
	// v9: options template scope System, fields sampler id 48 + interval 34.
	opt := v9OptTpl(260, []fld{{1, 4, 0}}, []fld{{48, 1, 0}, {34, 4, 0}})
	optData := set(260, u32(0), []byte{5}, u32(512), u32(0), []byte{6}, u32(64), []byte{0, 0})
	tpl := v9Tpl(300, fld{8, 4, 0}, fld{48, 1, 0})
	data := v9Packet(1, testSecs, 9, set(1, opt), optData, set(0, tpl), set(300, u32(1), []byte{5}, u32(2), []byte{6}, u32(3), []byte{7}))
	st := mustDecode(t, d, pkt(exporterA, data), b)
	if st.OptionsRecords != 2 || st.Records != 3 || len(b.Records) != 3 {
		t.Fatalf("stats %+v, %d records", st, len(b.Records))
	}
	for i, want := range []uint32{512, 64, 0} {
		r := b.Records[i]
		if r.SamplingRate != want || r.Has(core.FieldSamplingRate) != (want != 0) || !r.Has(core.FieldSamplerID) {
			t.Errorf("record %d: rate %d (present %v) want %d", i, r.SamplingRate, r.Has(core.FieldSamplingRate), want)
		}
	}
	// Another domain does not share the table.
	b.Records = b.Records[:0]
	mustDecode(t, d, pkt(exporterA, v9Packet(1, testSecs, 10, set(0, tpl), set(300, u32(1), []byte{5}))), b)
	if b.Records[0].SamplingRate != 0 {
		t.Errorf("sampler table leaked across domains")
	}
	// EmitOptions appends options records flagged as such.
	d2 := NewDecoder(DecoderConfig{EmitOptions: true})
	b.Records = b.Records[:0]
	mustDecode(t, d2, pkt(exporterA, v9Packet(1, testSecs, 9, set(1, opt), optData)), b)
	if len(b.Records) != 2 || b.Records[0].Flags&core.FlagOptions == 0 || b.Records[0].SamplerID != 5 || b.Records[0].Flows != 0 {
		t.Errorf("EmitOptions: %+v", b.Records)
	}
}

func TestDomainWideRateAndIPFIXSampling(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	b := &core.Batch{}
	// IPFIX options with scope 144 exportingProcessId and samplingInterval 34, no sampler id.
	opt := ipfixOptTpl(256, 1, fld{144, 4, 0}, fld{34, 4, 0})
	tpl := ipfixTpl(257, fld{8, 4, 0})
	tpl2 := ipfixTpl(258, fld{8, 4, 0}, fld{305, 4, 0}, fld{306, 4, 0})
	tpl3 := ipfixTpl(259, fld{8, 4, 0}, fld{34, 2, 0})
	data := ipfixPacket(testSecs, 3, set(3, opt), set(2, tpl, tpl2, tpl3), set(256, u32(1), u32(1000)),
		set(257, u32(1)), set(258, u32(2), u32(1), u32(99)), set(259, u32(3), u16(10)))
	st := mustDecode(t, d, pkt(exporterA, data), b)
	if st.Records != 3 {
		t.Fatalf("stats %+v", st)
	}
	for i, want := range []uint32{1000, 100, 10} {
		if r := b.Records[i]; r.SamplingRate != want || !r.Has(core.FieldSamplingRate) {
			t.Errorf("record %d: rate %d want %d", i, r.SamplingRate, want)
		}
	}
	// IPFIX 302 selectorId table with 305/306 in the options record.
	opt2 := ipfixOptTpl(260, 1, fld{302, 4, 0}, fld{305, 4, 0}, fld{306, 4, 0})
	tpl4 := ipfixTpl(261, fld{8, 4, 0}, fld{302, 4, 0})
	b.Records = b.Records[:0]
	mustDecode(t, d, pkt(exporterB, ipfixPacket(testSecs, 3, set(3, opt2), set(260, u32(77), u32(1), u32(31)), set(2, tpl4), set(261, u32(1), u32(77), u32(2), u32(78)))), b)
	if b.Records[0].SamplingRate != 32 || b.Records[1].Has(core.FieldSamplingRate) {
		t.Errorf("selector table: %d %d", b.Records[0].SamplingRate, b.Records[1].SamplingRate)
	}
}

func TestPendingQueue(t *testing.T) {
	d := NewDecoder(DecoderConfig{PendingMaxPerExporter: 3})
	b := &core.Batch{}
	data := func(i int) []byte { return v9Packet(1000000, testSecs, 1, set(300, fiveTupleRec(i))) }
	for i := 0; i < 5; i++ {
		st := mustDecode(t, d, pkt(exporterA, data(i)), b)
		if st.Queued != 1 || (i >= 3) != (st.DroppedQueued == 1) {
			t.Errorf("packet %d: %+v", i, st)
		}
	}
	// Another exporter's template does not release exporter A's data.
	st := mustDecode(t, d, pkt(exporterB, v9Packet(1000000, testSecs, 1, set(0, v9Tpl(300, fiveTuple...)))), b)
	if st.Released != 0 || len(b.Records) != 0 || d.Pending() != 3 {
		t.Fatalf("cross-exporter release %+v", st)
	}
	// The template arrives: the 3 newest are released into this call's batch, oldest first.
	st = mustDecode(t, d, pkt(exporterA, v9Packet(1000000, testSecs, 1, set(0, v9Tpl(300, fiveTuple...)), set(300, fiveTupleRec(9)))), b)
	if st.Released != 3 || st.Records != 4 || len(b.Records) != 4 || d.Pending() != 0 {
		t.Fatalf("release %+v, %d records", st, len(b.Records))
	}
	for i, want := range []uint16{1026, 1027, 1028, 1033} {
		if b.Records[i].SrcPort != want {
			t.Errorf("record %d src port %d want %d", i, b.Records[i].SrcPort, want)
		}
	}
	// Data before its template in the same datagram is released by it.
	b.Records = b.Records[:0]
	st = mustDecode(t, d, pkt(exporterA, v9Packet(1000000, testSecs, 2, set(300, fiveTupleRec(1)), set(0, v9Tpl(300, fiveTuple...)))), b)
	if st.Queued != 1 || st.Released != 1 || st.Records != 1 {
		t.Errorf("same datagram: %+v", st)
	}
	// AddTemplates releases queued data.
	d2 := NewDecoder(DecoderConfig{})
	b.Records = b.Records[:0]
	mustDecode(t, d2, pkt(exporterA, data(4)), b)
	st = d2.AddTemplates(d.Templates(), b)
	if st.Released != 1 || st.Records != 1 || b.Records[0].SrcPort != 1028 || b.Records[0].Start != int64(testSecs-100)*1e9 {
		t.Errorf("AddTemplates: %+v %+v", st, b.Records)
	}
}

func TestExpire(t *testing.T) {
	d := NewDecoder(DecoderConfig{PendingMaxAge: time.Minute, TemplateTTL: time.Hour})
	b := &core.Batch{}
	mustDecode(t, d, pkt(exporterA, v9Packet(1, testSecs, 1, set(0, v9Tpl(300, fiveTuple...)), set(301, []byte{1, 2, 3, 4}))), b)
	now := time.Unix(0, testReceived)
	if q, tp := d.Expire(now.Add(30 * time.Second)); q != 0 || tp != 0 {
		t.Errorf("early expire %d %d", q, tp)
	}
	if q, tp := d.Expire(now.Add(2 * time.Minute)); q != 1 || tp != 0 || d.Pending() != 0 {
		t.Errorf("queue expire %d %d", q, tp)
	}
	if q, tp := d.Expire(now.Add(2 * time.Hour)); q != 0 || tp != 1 || len(d.Templates()) != 0 {
		t.Errorf("template expire %d %d", q, tp)
	}
}

func TestTemplatesPersistence(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	b := &core.Batch{}
	mustDecode(t, d, pkt(exporterA, ipfixPacket(testSecs, 4, set(2, ipfixTpl(400, fld{8, 4, 0}, fld{100, varLen, 9})), set(3, ipfixOptTpl(401, 1, fld{302, 4, 0}, fld{34, 4, 0})))), b)
	data, err := MarshalTemplates(d.Templates())
	if err != nil {
		t.Fatal(err)
	}
	sets, err := UnmarshalTemplates(data)
	if err != nil || len(sets) != 2 {
		t.Fatalf("unmarshal: %v %d", err, len(sets))
	}
	d2 := NewDecoder(DecoderConfig{})
	d2.AddTemplates(sets, b)
	mustDecode(t, d2, pkt(exporterA, ipfixPacket(testSecs, 4, set(401, u32(0), u32(0)), set(400, u32(0x01020304), []byte{1, 'a'}))), b)
	if len(b.Records) != 1 || b.Records[0].SrcAddr != netip.MustParseAddr("1.2.3.4") {
		t.Errorf("decode with restored template: %+v", b.Records)
	}
	for _, bad := range []string{"", "{", `{"format":"x","version":1}`, `{"format":"flowline-netflow-templates","version":2}`,
		`{"format":"flowline-netflow-templates","version":1,"templates":[{"exporter":"1.2.3.4","version":9,"id":300}]}`} {
		if _, err := UnmarshalTemplates([]byte(bad)); !errors.Is(err, ErrTemplateFile) {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

func TestElementName(t *testing.T) {
	cases := []struct {
		ent  uint32
		id   uint16
		want string
	}{
		{0, 1, "octetDeltaCount"}, {0, 8, "sourceIPv4Address"}, {0, 160, "systemInitTimeMilliseconds"},
		{0, 65000, "65000"}, {PENReverse, 85, "reverseOctetTotalCount"}, {PENNetScaler, 130, "netscalerHttpReqUrl"},
		{PENBarracuda, 4, "FW_Rule"}, {PENCERT, 33, "silkAppLabel"}, {PENVMware, 889, "vmwareVxlanExportRole"},
		{PENNtop, 1028, "protocol_ntop"}, {12345, 7, "12345.7"},
	}
	for _, c := range cases {
		if got := ElementName(c.ent, c.id); got != c.want {
			t.Errorf("ElementName(%d, %d) = %q, want %q", c.ent, c.id, got, c.want)
		}
	}
}

func TestIPFIXSysInitFromOptions(t *testing.T) {
	// Juniper sends systemInitTimeMilliseconds (160) in options data; flow
	// records carry 22/21 relative to it.
	d := NewDecoder(DecoderConfig{})
	b := &core.Batch{}
	opt := ipfixOptTpl(256, 1, fld{144, 4, 0}, fld{160, 8, 0}, fld{34, 4, 0})
	tpl := ipfixTpl(257, fld{8, 4, 0}, fld{22, 4, 0}, fld{21, 4, 0})
	data := ipfixPacket(testSecs, 1, set(3, opt), set(256, u32(1), u64(testSecs*1000), u32(0)), set(2, tpl), set(257, u32(1), u32(2000), u32(4000)))
	mustDecode(t, d, pkt(exporterA, data), b)
	r := b.Records[0]
	if r.Start != (testSecs*1000+2000)*1e6 || r.End != (testSecs*1000+4000)*1e6 || r.Has(core.FieldSamplingRate) {
		t.Errorf("start %d end %d rate %d", r.Start, r.End, r.SamplingRate)
	}
}
