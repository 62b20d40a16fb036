package pmacct

import (
	"encoding/binary"
	"net/netip"
)

// flow is one NetFlow v9 data record the test sends to both collectors.
type flow struct {
	src, dst, nh      netip.Addr
	sport, dport      uint16
	proto, flags, tos uint8
	smask, dmask      uint8
	srcAS, dstAS      uint32
	inIf, outIf       uint32
	packets, bytes    uint32
	first, last       uint32 // sysUptime ms
	srcMAC, dstMAC    [6]byte
	vlan              uint16
}

// Template field types (NetFlow v9, RFC 3954).
const (
	tInBytes    = 1
	tInPkts     = 2
	tProtocol   = 4
	tSrcTOS     = 5
	tTCPFlags   = 6
	tL4SrcPort  = 7
	tIPv4Src    = 8
	tSrcMask    = 9
	tInputSNMP  = 10
	tL4DstPort  = 11
	tIPv4Dst    = 12
	tDstMask    = 13
	tOutputSNMP = 14
	tIPv4NH     = 15
	tSrcAS      = 16
	tDstAS      = 17
	tLast       = 21
	tFirst      = 22
	tIPv6Src    = 27
	tIPv6Dst    = 28
	tIPv6SMask  = 29
	tIPv6DMask  = 30
	tInSrcMAC   = 56
	tOutDstMAC  = 57
	tSrcVLAN    = 58
	tIPv6NH     = 62
)

type tfield struct{ typ, len uint16 }

func templateFields(v6 bool) []tfield {
	alen := uint16(4)
	src, dst, nh, sm, dm := uint16(tIPv4Src), uint16(tIPv4Dst), uint16(tIPv4NH), uint16(tSrcMask), uint16(tDstMask)
	if v6 {
		alen = 16
		src, dst, nh, sm, dm = tIPv6Src, tIPv6Dst, tIPv6NH, tIPv6SMask, tIPv6DMask
	}
	return []tfield{
		{tInBytes, 4}, {tInPkts, 4}, {tProtocol, 1}, {tSrcTOS, 1}, {tTCPFlags, 1},
		{tL4SrcPort, 2}, {src, alen}, {sm, 1}, {tInputSNMP, 4}, {tL4DstPort, 2},
		{dst, alen}, {dm, 1}, {tOutputSNMP, 4}, {nh, alen}, {tSrcAS, 4}, {tDstAS, 4},
		{tLast, 4}, {tFirst, 4}, {tInSrcMAC, 6}, {tOutDstMAC, 6}, {tSrcVLAN, 2},
	}
}

const (
	tmplV4 = 256
	tmplV6 = 257
)

// encodeV9 builds NetFlow v9 datagrams: the first carries both templates, the
// following ones carry up to perPacket flows each (grouped by address family).
func encodeV9(flows []flow, unixSecs, uptime uint32, sourceID uint32, perPacket int) [][]byte {
	var out [][]byte
	seq := uint32(0)
	header := func(count int) []byte {
		b := make([]byte, 20)
		binary.BigEndian.PutUint16(b[0:], 9)
		binary.BigEndian.PutUint16(b[2:], uint16(count))
		binary.BigEndian.PutUint32(b[4:], uptime)
		binary.BigEndian.PutUint32(b[8:], unixSecs)
		binary.BigEndian.PutUint32(b[12:], seq)
		binary.BigEndian.PutUint32(b[16:], sourceID)
		seq++
		return b
	}
	// Template datagram.
	pkt := header(2)
	fs := []byte{0, 0, 0, 0}
	for _, t := range []struct {
		id uint16
		v6 bool
	}{{tmplV4, false}, {tmplV6, true}} {
		f := templateFields(t.v6)
		fs = binary.BigEndian.AppendUint16(fs, t.id)
		fs = binary.BigEndian.AppendUint16(fs, uint16(len(f)))
		for _, x := range f {
			fs = binary.BigEndian.AppendUint16(fs, x.typ)
			fs = binary.BigEndian.AppendUint16(fs, x.len)
		}
	}
	binary.BigEndian.PutUint16(fs[2:], uint16(len(fs)))
	out = append(out, append(pkt, fs...))

	for _, v6 := range []bool{false, true} {
		var group []flow
		for _, f := range flows {
			if f.src.Is6() == v6 {
				group = append(group, f)
			}
		}
		for len(group) > 0 {
			n := min(perPacket, len(group))
			chunk := group[:n]
			group = group[n:]
			id := uint16(tmplV4)
			if v6 {
				id = tmplV6
			}
			set := []byte{byte(id >> 8), byte(id), 0, 0}
			for _, f := range chunk {
				set = appendFlow(set, f)
			}
			for len(set)%4 != 0 {
				set = append(set, 0)
			}
			binary.BigEndian.PutUint16(set[2:], uint16(len(set)))
			out = append(out, append(header(n), set...))
		}
	}
	return out
}

func appendFlow(b []byte, f flow) []byte {
	b = binary.BigEndian.AppendUint32(b, f.bytes)
	b = binary.BigEndian.AppendUint32(b, f.packets)
	b = append(b, f.proto, f.tos, f.flags)
	b = binary.BigEndian.AppendUint16(b, f.sport)
	b = append(b, f.src.AsSlice()...)
	b = append(b, f.smask)
	b = binary.BigEndian.AppendUint32(b, f.inIf)
	b = binary.BigEndian.AppendUint16(b, f.dport)
	b = append(b, f.dst.AsSlice()...)
	b = append(b, f.dmask)
	b = binary.BigEndian.AppendUint32(b, f.outIf)
	b = append(b, f.nh.AsSlice()...)
	b = binary.BigEndian.AppendUint32(b, f.srcAS)
	b = binary.BigEndian.AppendUint32(b, f.dstAS)
	b = binary.BigEndian.AppendUint32(b, f.last)
	b = binary.BigEndian.AppendUint32(b, f.first)
	b = append(b, f.srcMAC[:]...)
	b = append(b, f.dstMAC[:]...)
	b = binary.BigEndian.AppendUint16(b, f.vlan)
	return b
}

// testFlows is the fixed flow set: TCP with several flag sets, UDP, ICMP,
// GRE, an unassigned protocol, IPv6 TCP and ICMPv6; some flows repeat a key so
// that the aggregates sum and OR.
func testFlows() []flow {
	a := netip.MustParseAddr
	mac1 := [6]byte{0x00, 0x1b, 0x21, 0xaa, 0xbb, 0x01}
	mac2 := [6]byte{0xf8, 0x0f, 0x6f, 0x00, 0x0c, 0xde}
	fs := []flow{
		{src: a("10.0.0.1"), dst: a("192.168.1.10"), nh: a("10.255.0.1"), sport: 40000, dport: 443, proto: 6, flags: 0x18, tos: 0, smask: 24, dmask: 16, srcAS: 64512, dstAS: 15169, inIf: 1, outIf: 2, packets: 10, bytes: 5000},
		{src: a("10.0.0.1"), dst: a("192.168.1.10"), nh: a("10.255.0.1"), sport: 40000, dport: 443, proto: 6, flags: 0x02, tos: 0, smask: 24, dmask: 16, srcAS: 64512, dstAS: 15169, inIf: 1, outIf: 2, packets: 1, bytes: 60},
		{src: a("10.0.0.2"), dst: a("8.8.8.8"), nh: a("10.255.0.1"), sport: 53000, dport: 53, proto: 17, tos: 0xb8, smask: 24, dmask: 8, srcAS: 64512, dstAS: 15169, inIf: 3, outIf: 2, packets: 2, bytes: 140},
		{src: a("10.0.0.3"), dst: a("1.1.1.1"), nh: a("10.255.0.2"), sport: 0, dport: 2048, proto: 1, tos: 0, smask: 24, dmask: 24, srcAS: 64512, dstAS: 13335, inIf: 1, outIf: 4, packets: 4, bytes: 336},
		{src: a("172.16.5.4"), dst: a("10.9.8.7"), nh: a("0.0.0.0"), proto: 47, tos: 0x20, smask: 12, dmask: 8, srcAS: 65000, dstAS: 0, inIf: 7, outIf: 8, packets: 100, bytes: 150000},
		{src: a("172.16.5.4"), dst: a("10.9.8.7"), nh: a("0.0.0.0"), proto: 253, tos: 0, smask: 12, dmask: 8, srcAS: 65000, inIf: 7, outIf: 8, packets: 3, bytes: 300},
		{src: a("10.0.0.1"), dst: a("192.168.1.10"), nh: a("10.255.0.1"), sport: 40001, dport: 80, proto: 6, flags: 0x11, tos: 0, smask: 24, dmask: 16, srcAS: 64512, dstAS: 15169, inIf: 1, outIf: 2, packets: 5, bytes: 400},
		{src: a("2001:db8::1"), dst: a("2001:db8:1::53"), nh: a("fe80::1"), sport: 51000, dport: 443, proto: 6, flags: 0x1b, tos: 0, smask: 64, dmask: 48, srcAS: 64513, dstAS: 64514, inIf: 11, outIf: 12, packets: 20, bytes: 20000},
		{src: a("2001:db8::1"), dst: a("2001:db8:1::53"), nh: a("fe80::1"), sport: 0, dport: 32768, proto: 58, tos: 0, smask: 64, dmask: 48, srcAS: 64513, dstAS: 64514, inIf: 11, outIf: 12, packets: 1, bytes: 104},
		{src: a("2001:db8::2"), dst: a("2001:db8:1::53"), nh: a("fe80::1"), sport: 5353, dport: 5353, proto: 17, tos: 0x10, smask: 64, dmask: 48, srcAS: 64513, dstAS: 64514, inIf: 11, outIf: 12, packets: 7, bytes: 700},
		// Masks of 0 (an exporter that knows no route): the network
		// primitives follow nfacctd.
		{src: a("198.51.100.7"), dst: a("203.0.113.9"), nh: a("10.255.0.3"), sport: 12345, dport: 22, proto: 6, flags: 0x18, smask: 0, dmask: 0, srcAS: 0, dstAS: 0, inIf: 5, outIf: 6, packets: 9, bytes: 900},
		{src: a("2001:db8:5::7"), dst: a("2001:db8:6::9"), nh: a("fe80::2"), sport: 12346, dport: 22, proto: 6, flags: 0x18, smask: 0, dmask: 0, inIf: 5, outIf: 6, packets: 11, bytes: 1100},
	}
	for i := range fs {
		fs[i].srcMAC, fs[i].dstMAC, fs[i].vlan = mac1, mac2, uint16(100+i%3)
		// Whole seconds before the header's uptime: nfacctd 1.7.7 computes
		// first/last switched as unix_secs - (uptime-switched)/1000 in
		// integer seconds (a flow ending 99.5 s before export prints 99 s
		// before), while Flowline keeps milliseconds; the unaggregated
		// comparison would show that known difference, not the print form.
		fs[i].first = 1000 * uint32(i)
		fs[i].last = 1000*uint32(i) + 1000
	}
	return fs
}
