package netflow

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/flowline/flowline/core"
)

// A small hand encoder for test and benchmark packets.

type fld struct {
	typ, l uint16
	ent    uint32
}

var exporterA = netip.MustParseAddrPort("192.0.2.1:4739")
var exporterB = netip.MustParseAddrPort("192.0.2.2:4739")

const testSecs = 1700000000

var testReceived = time.Unix(testSecs, 0).UnixNano()

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// set builds a (flow)set with its header.
func set(id uint16, body ...[]byte) []byte {
	b := cat(body...)
	return cat(u16(id), u16(uint16(len(b)+4)), b)
}

func v9Packet(uptime, secs, domain uint32, sets ...[]byte) []byte {
	return cat(u16(9), u16(uint16(len(sets))), u32(uptime), u32(secs), u32(1), u32(domain), cat(sets...))
}

func ipfixPacket(secs, domain uint32, sets ...[]byte) []byte {
	b := cat(sets...)
	return cat(u16(10), u16(uint16(len(b)+16)), u32(secs), u32(1), u32(domain), b)
}

// v9Tpl is one v9 template record.
func v9Tpl(id uint16, fields ...fld) []byte {
	b := cat(u16(id), u16(uint16(len(fields))))
	for _, f := range fields {
		b = cat(b, u16(f.typ), u16(f.l))
	}
	return b
}

// v9OptTpl is one v9 options template record.
func v9OptTpl(id uint16, scope, opts []fld) []byte {
	b := cat(u16(id), u16(uint16(4*len(scope))), u16(uint16(4*len(opts))))
	for _, f := range append(append([]fld(nil), scope...), opts...) {
		b = cat(b, u16(f.typ), u16(f.l))
	}
	return b
}

func ipfixFields(fields []fld) []byte {
	var b []byte
	for _, f := range fields {
		if f.ent != 0 {
			b = cat(b, u16(f.typ|0x8000), u16(f.l), u32(f.ent))
		} else {
			b = cat(b, u16(f.typ), u16(f.l))
		}
	}
	return b
}

func ipfixTpl(id uint16, fields ...fld) []byte {
	return cat(u16(id), u16(uint16(len(fields))), ipfixFields(fields))
}

func ipfixOptTpl(id uint16, scope int, fields ...fld) []byte {
	return cat(u16(id), u16(uint16(len(fields))), u16(uint16(scope)), ipfixFields(fields))
}

func pkt(exp netip.AddrPort, data []byte) core.Packet {
	return core.Packet{Data: data, Exporter: exp, Received: testReceived}
}

// The typical 5-tuple template used by the benchmarks and several tests.
var fiveTuple = []fld{
	{8, 4, 0}, {12, 4, 0}, {7, 2, 0}, {11, 2, 0}, {4, 1, 0}, {5, 1, 0}, {6, 1, 0},
	{10, 4, 0}, {14, 4, 0}, {2, 8, 0}, {1, 8, 0}, {22, 4, 0}, {21, 4, 0},
}

// fiveTupleRec encodes one record of fiveTuple (v9 relative times).
func fiveTupleRec(i int) []byte {
	return cat(
		[]byte{10, 0, byte(i >> 8), byte(i)}, []byte{192, 168, 1, byte(i)},
		u16(uint16(1024+i)), u16(443), []byte{6, 0x10, 0x1b},
		u32(3), u32(7), u64(uint64(10+i)), u64(uint64(1500*(10+i))),
		u32(900000), u32(995000),
	)
}

// ipfixFiveTuple replaces the relative times by 152/153 milliseconds.
var ipfixFiveTuple = append(append([]fld(nil), fiveTuple[:11]...), fld{152, 8, 0}, fld{153, 8, 0})

func ipfixFiveTupleRec(i int) []byte {
	r := fiveTupleRec(i)
	r = r[:len(r)-8]
	return cat(r, u64(testSecs*1000-5000), u64(testSecs*1000-100))
}

func timeAfter(ns int64) time.Time { return time.Unix(0, ns).Add(time.Hour) }
