// Package wire is Flowline's compact binary encoding of a batch: the records
// (or packets) of one core.Batch in one byte slice. The plugin protocol
// carries it between Flowline and its external plugins, and outputs.amqp
// publishes it (format = "flowline") for Flowline-to-Flowline transport.
//
// The encoding is columnar. A batch starts with a header:
//
//	"FLW" version(1 byte) kind(1 byte: 1 records, 2 packets) id(uvarint) count(uvarint)
//
// A record batch then holds one column per Record field, in the fixed order
// of the columns table. Each column starts with a mode byte:
//
//	0  every record holds the zero value (nothing follows)
//	1  every record holds the same value (the value follows once)
//	2  the column's minimum follows, then each record's difference to it
//	   (numbers as uvarints; addresses and MACs as full values)
//
// so that what aggregated records share (exporter, version, time bin) costs a
// few bytes per batch and counters cost their varint size. Extensions, when
// any record has some, follow as the last column. A packet batch holds, per
// packet, its payload, exporter, arrival time and input (names once per
// batch).
//
// Decoding never trusts a length: a truncated or lying batch is an error,
// never a panic, and decoding allocates only to grow the batch.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/flowline/flowline/core"
)

// Version is the encoding's version; a decoder refuses any other.
const Version = 1

// MaxCount bounds the items of one batch, so that a lying header cannot make
// a decoder allocate without limit.
const MaxCount = 1 << 17

// ContentType names the encoding in message headers (AMQP content type).
const ContentType = "application/vnd.flowline.batch"

// Kinds of batch.
const (
	KindRecords = 1
	KindPackets = 2
)

var magic = [3]byte{'F', 'L', 'W'}

// Column modes.
const (
	modeZero  = 0
	modeConst = 1
	modeDelta = 2
)

// Errors a decoder returns (wrapped with where it happened).
var (
	ErrTruncated = errors.New("wire: batch truncated")
	ErrFormat    = errors.New("wire: not a flowline batch")
)

// numColumn is a numeric Record field: how to read and set it.
type numColumn struct {
	get func(*core.Record) uint64
	set func(*core.Record, uint64)
}

// numColumns lists the numeric fields in encoding order. Appending to the end
// is compatible only with a new Version.
var numColumns = []numColumn{
	{func(r *core.Record) uint64 { return uint64(r.Present) }, func(r *core.Record, v uint64) { r.Present = core.Field(v) }},
	{func(r *core.Record) uint64 { return uint64(r.Flags) }, func(r *core.Record, v uint64) { r.Flags = core.Flags(v) }},
	{func(r *core.Record) uint64 { return uint64(r.ExporterPort) }, func(r *core.Record, v uint64) { r.ExporterPort = uint16(v) }},
	{func(r *core.Record) uint64 { return uint64(r.Version) }, func(r *core.Record, v uint64) { r.Version = uint16(v) }},
	{func(r *core.Record) uint64 { return uint64(r.Domain) }, func(r *core.Record, v uint64) { r.Domain = uint32(v) }},
	{func(r *core.Record) uint64 { return uint64(r.TemplateID) }, func(r *core.Record, v uint64) { r.TemplateID = uint16(v) }},
	{func(r *core.Record) uint64 { return uint64(r.Proto) }, func(r *core.Record, v uint64) { r.Proto = uint8(v) }},
	{func(r *core.Record) uint64 { return uint64(r.TCPFlags) }, func(r *core.Record, v uint64) { r.TCPFlags = uint8(v) }},
	{func(r *core.Record) uint64 { return uint64(r.TOS) }, func(r *core.Record, v uint64) { r.TOS = uint8(v) }},
	{func(r *core.Record) uint64 { return uint64(r.SrcMask) }, func(r *core.Record, v uint64) { r.SrcMask = uint8(v) }},
	{func(r *core.Record) uint64 { return uint64(r.DstMask) }, func(r *core.Record, v uint64) { r.DstMask = uint8(v) }},
	{func(r *core.Record) uint64 { return uint64(r.Direction) }, func(r *core.Record, v uint64) { r.Direction = uint8(v) }},
	{func(r *core.Record) uint64 { return uint64(r.SrcPort) }, func(r *core.Record, v uint64) { r.SrcPort = uint16(v) }},
	{func(r *core.Record) uint64 { return uint64(r.DstPort) }, func(r *core.Record, v uint64) { r.DstPort = uint16(v) }},
	{func(r *core.Record) uint64 { return uint64(r.VLAN) }, func(r *core.Record, v uint64) { r.VLAN = uint16(v) }},
	{func(r *core.Record) uint64 { return uint64(r.SrcAS) }, func(r *core.Record, v uint64) { r.SrcAS = uint32(v) }},
	{func(r *core.Record) uint64 { return uint64(r.DstAS) }, func(r *core.Record, v uint64) { r.DstAS = uint32(v) }},
	{func(r *core.Record) uint64 { return uint64(r.InIface) }, func(r *core.Record, v uint64) { r.InIface = uint32(v) }},
	{func(r *core.Record) uint64 { return uint64(r.OutIface) }, func(r *core.Record, v uint64) { r.OutIface = uint32(v) }},
	{func(r *core.Record) uint64 { return uint64(r.Tag) }, func(r *core.Record, v uint64) { r.Tag = uint32(v) }},
	{func(r *core.Record) uint64 { return uint64(r.Tag2) }, func(r *core.Record, v uint64) { r.Tag2 = uint32(v) }},
	{func(r *core.Record) uint64 { return r.Packets }, func(r *core.Record, v uint64) { r.Packets = v }},
	{func(r *core.Record) uint64 { return r.Bytes }, func(r *core.Record, v uint64) { r.Bytes = v }},
	{func(r *core.Record) uint64 { return r.Flows }, func(r *core.Record, v uint64) { r.Flows = v }},
	{func(r *core.Record) uint64 { return uint64(r.SamplingRate) }, func(r *core.Record, v uint64) { r.SamplingRate = uint32(v) }},
	{func(r *core.Record) uint64 { return uint64(r.SamplerID) }, func(r *core.Record, v uint64) { r.SamplerID = uint32(v) }},
	{func(r *core.Record) uint64 { return uint64(r.Start) }, func(r *core.Record, v uint64) { r.Start = int64(v) }},
	{func(r *core.Record) uint64 { return uint64(r.End) }, func(r *core.Record, v uint64) { r.End = int64(v) }},
	{func(r *core.Record) uint64 { return uint64(r.Received) }, func(r *core.Record, v uint64) { r.Received = int64(v) }},
	{func(r *core.Record) uint64 { return uint64(r.StampInserted) }, func(r *core.Record, v uint64) { r.StampInserted = int64(v) }},
	{func(r *core.Record) uint64 { return uint64(r.StampUpdated) }, func(r *core.Record, v uint64) { r.StampUpdated = int64(v) }},
}

// addrColumns are the address fields in encoding order.
var addrColumns = []func(*core.Record) *netip.Addr{
	func(r *core.Record) *netip.Addr { return &r.Exporter },
	func(r *core.Record) *netip.Addr { return &r.SrcAddr },
	func(r *core.Record) *netip.Addr { return &r.DstAddr },
	func(r *core.Record) *netip.Addr { return &r.NextHop },
}

// macColumns are the MAC fields in encoding order.
var macColumns = []func(*core.Record) *[6]byte{
	func(r *core.Record) *[6]byte { return &r.SrcMAC },
	func(r *core.Record) *[6]byte { return &r.DstMAC },
}

func appendHeader(dst []byte, kind byte, id uint64, n int) []byte {
	dst = append(dst, magic[:]...)
	dst = append(dst, Version, kind)
	dst = binary.AppendUvarint(dst, id)
	return binary.AppendUvarint(dst, uint64(n))
}

// AppendRecords encodes recs as one batch with the given id and appends it
// to dst.
func AppendRecords(dst []byte, id uint64, recs []core.Record) []byte {
	dst = appendHeader(dst, KindRecords, id, len(recs))
	if len(recs) == 0 {
		return dst
	}
	for _, c := range numColumns {
		dst = appendNumColumn(dst, recs, c.get)
	}
	for _, c := range addrColumns {
		dst = appendAddrColumn(dst, recs, c)
	}
	for _, c := range macColumns {
		dst = appendMACColumn(dst, recs, c)
	}
	return appendExtColumn(dst, recs)
}

func appendNumColumn(dst []byte, recs []core.Record, get func(*core.Record) uint64) []byte {
	lo, hi := get(&recs[0]), get(&recs[0])
	for i := 1; i < len(recs); i++ {
		v := get(&recs[i])
		lo, hi = min(lo, v), max(hi, v)
	}
	switch {
	case lo == 0 && hi == 0:
		return append(dst, modeZero)
	case lo == hi:
		return binary.AppendUvarint(append(dst, modeConst), lo)
	}
	dst = binary.AppendUvarint(append(dst, modeDelta), lo)
	for i := range recs {
		dst = binary.AppendUvarint(dst, get(&recs[i])-lo)
	}
	return dst
}

func appendAddr(dst []byte, a netip.Addr) []byte {
	switch {
	case !a.IsValid():
		return append(dst, 0)
	case a.Is4():
		b := a.As4()
		return append(append(dst, 4), b[:]...)
	default:
		b := a.As16()
		return append(append(dst, 16), b[:]...)
	}
}

func appendAddrColumn(dst []byte, recs []core.Record, get func(*core.Record) *netip.Addr) []byte {
	first := *get(&recs[0])
	same := true
	for i := 1; i < len(recs) && same; i++ {
		same = *get(&recs[i]) == first
	}
	switch {
	case same && !first.IsValid():
		return append(dst, modeZero)
	case same:
		return appendAddr(append(dst, modeConst), first)
	}
	dst = append(dst, modeDelta)
	for i := range recs {
		dst = appendAddr(dst, *get(&recs[i]))
	}
	return dst
}

func appendMACColumn(dst []byte, recs []core.Record, get func(*core.Record) *[6]byte) []byte {
	first := *get(&recs[0])
	same := true
	for i := 1; i < len(recs) && same; i++ {
		same = *get(&recs[i]) == first
	}
	switch {
	case same && first == [6]byte{}:
		return append(dst, modeZero)
	case same:
		return append(append(dst, modeConst), first[:]...)
	}
	dst = append(dst, modeDelta)
	for i := range recs {
		m := get(&recs[i])
		dst = append(dst, m[:]...)
	}
	return dst
}

func appendExtColumn(dst []byte, recs []core.Record) []byte {
	hasExt := false
	for i := range recs {
		if len(recs[i].Ext) > 0 {
			hasExt = true
			break
		}
	}
	if !hasExt {
		return append(dst, modeZero)
	}
	dst = append(dst, modeDelta)
	for i := range recs {
		dst = binary.AppendUvarint(dst, uint64(len(recs[i].Ext)))
		for _, e := range recs[i].Ext {
			dst = binary.AppendUvarint(dst, uint64(e.Enterprise))
			dst = binary.AppendUvarint(dst, uint64(e.Type))
			dst = binary.AppendUvarint(dst, uint64(len(e.Value)))
			dst = append(dst, e.Value...)
		}
	}
	return dst
}

// reader walks an encoded batch; the first error sticks.
type reader struct {
	buf []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w (reading %s)", ErrTruncated, what)
	}
	r.buf = nil
}

func (r *reader) byte(what string) byte {
	if len(r.buf) < 1 {
		r.fail(what)
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *reader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) bytes(n uint64, what string) []byte {
	if uint64(len(r.buf)) < n {
		r.fail(what)
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

func (r *reader) addr(what string) netip.Addr {
	switch r.byte(what) {
	case 0:
		return netip.Addr{}
	case 4:
		if b := r.bytes(4, what); b != nil {
			return netip.AddrFrom4([4]byte(b))
		}
		return netip.Addr{}
	case 16:
		if b := r.bytes(16, what); b != nil {
			return netip.AddrFrom16([16]byte(b))
		}
		return netip.Addr{}
	}
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad address tag in %s", ErrFormat, what)
	}
	r.buf = nil
	return netip.Addr{}
}

func (r *reader) mode(what string) byte {
	m := r.byte(what)
	if m > modeDelta && r.err == nil {
		r.err = fmt.Errorf("%w: unknown column mode %d in %s", ErrFormat, m, what)
		r.buf = nil
	}
	return m
}

// Header is what every batch starts with.
type Header struct {
	Kind  byte
	ID    uint64
	Count int
}

// ReadHeader checks the magic and version and returns the header and the
// rest of the batch.
func ReadHeader(data []byte) (Header, []byte, error) {
	if len(data) < 5 || [3]byte(data[:3]) != magic {
		return Header{}, nil, ErrFormat
	}
	if data[3] != Version {
		return Header{}, nil, fmt.Errorf("%w: encoding version %d, this Flowline reads version %d", ErrFormat, data[3], Version)
	}
	r := reader{buf: data[5:]}
	h := Header{Kind: data[4]}
	h.ID = r.uvarint("batch id")
	n := r.uvarint("count")
	if r.err != nil {
		return Header{}, nil, r.err
	}
	if n > MaxCount {
		return Header{}, nil, fmt.Errorf("%w: count %d exceeds the limit of %d", ErrFormat, n, MaxCount)
	}
	// Every packet takes at least five bytes, so a count beyond that lies.
	if h.Kind == KindPackets && n > uint64(len(r.buf))/5 {
		return Header{}, nil, fmt.Errorf("%w: %d packets cannot fit in %d bytes", ErrFormat, n, len(r.buf))
	}
	h.Count = int(n)
	return h, r.buf, nil
}

// Append encodes b as one batch with the given id and appends it to dst:
// its packets when it carries packets and no records, else its records.
// Decode reads either kind back.
func Append(dst []byte, id uint64, b *core.Batch) []byte {
	if len(b.Records) == 0 && len(b.Packets) > 0 {
		return AppendPackets(dst, id, b.Packets)
	}
	return AppendRecords(dst, id, b.Records)
}

// Decode decodes a batch of either kind into a new pooled batch (a packet
// batch for packets, a record batch for records) with one reference, and
// returns it with the batch id. On error nothing is returned to release.
func Decode(data []byte) (*core.Batch, uint64, error) {
	h, _, err := ReadHeader(data)
	if err != nil {
		return nil, 0, err
	}
	var b *core.Batch
	var id uint64
	if h.Kind == KindPackets {
		b = core.NewPacketBatch()
		id, err = DecodePackets(b, data)
	} else {
		b = core.NewBatch()
		id, err = DecodeRecords(b, data)
	}
	if err != nil {
		b.Release()
		return nil, 0, err
	}
	return b, id, nil
}

// DecodeRecords decodes a record batch, appending its records to b.Records
// (extension values are copied into b.Arena), and returns the batch id. On
// error b.Records is as it was.
func DecodeRecords(b *core.Batch, data []byte) (uint64, error) {
	h, rest, err := ReadHeader(data)
	if err != nil {
		return 0, err
	}
	if h.Kind != KindRecords {
		return 0, fmt.Errorf("%w: kind %d, want records", ErrFormat, h.Kind)
	}
	if h.Count == 0 {
		return h.ID, nil
	}
	if len(rest) < len(numColumns)+len(addrColumns)+len(macColumns)+1 {
		return 0, fmt.Errorf("%w (reading columns)", ErrTruncated)
	}
	base := len(b.Records)
	b.Records = append(b.Records, make([]core.Record, h.Count)...)
	recs := b.Records[base:]
	r := reader{buf: rest}
	for ci, c := range numColumns {
		switch r.mode("numeric column") {
		case modeConst:
			v := r.uvarint("constant")
			for i := range recs {
				c.set(&recs[i], v)
			}
		case modeDelta:
			lo := r.uvarint("minimum")
			for i := range recs {
				c.set(&recs[i], lo+r.uvarint("value"))
			}
		}
		if r.err != nil {
			b.Records = b.Records[:base]
			return 0, fmt.Errorf("column %d: %w", ci, r.err)
		}
	}
	for _, c := range addrColumns {
		switch r.mode("address column") {
		case modeConst:
			a := r.addr("address")
			for i := range recs {
				*c(&recs[i]) = a
			}
		case modeDelta:
			for i := range recs {
				*c(&recs[i]) = r.addr("address")
			}
		}
	}
	for _, c := range macColumns {
		switch r.mode("MAC column") {
		case modeConst:
			if m := r.bytes(6, "MAC"); m != nil {
				for i := range recs {
					*c(&recs[i]) = [6]byte(m)
				}
			}
		case modeDelta:
			for i := range recs {
				if m := r.bytes(6, "MAC"); m != nil {
					*c(&recs[i]) = [6]byte(m)
				}
			}
		}
	}
	if r.mode("extension column") == modeDelta {
		decodeExt(&r, b, recs)
	}
	if r.err == nil && len(r.buf) != 0 {
		r.err = fmt.Errorf("%w: %d bytes after the last column", ErrFormat, len(r.buf))
	}
	if r.err != nil {
		b.Records = b.Records[:base]
		return 0, r.err
	}
	return h.ID, nil
}

// decodeExt reads the extension column: the values are copied into the
// arena, grown once to hold them all so that earlier slices stay valid.
func decodeExt(r *reader, b *core.Batch, recs []core.Record) {
	if need := len(b.Arena) + len(r.buf); cap(b.Arena) < need {
		arena := make([]byte, len(b.Arena), need)
		copy(arena, b.Arena)
		b.Arena = arena
	}
	var all []core.Extension
	counts := make([]int, len(recs))
	for i := range recs {
		n := r.uvarint("extension count")
		if n > uint64(len(r.buf)) {
			r.fail("extensions")
			return
		}
		counts[i] = int(n)
		for range n {
			var e core.Extension
			e.Enterprise = uint32(r.uvarint("enterprise"))
			e.Type = uint16(r.uvarint("element"))
			v := r.bytes(r.uvarint("length"), "value")
			if r.err != nil {
				return
			}
			start := len(b.Arena)
			b.Arena = append(b.Arena, v...)
			e.Value = b.Arena[start:len(b.Arena):len(b.Arena)]
			all = append(all, e)
		}
	}
	for i := range recs {
		if counts[i] > 0 {
			recs[i].Ext = all[:counts[i]:counts[i]]
			all = all[counts[i]:]
		}
	}
}

// AppendPackets encodes pkts as one batch with the given id and appends it
// to dst.
func AppendPackets(dst []byte, id uint64, pkts []core.Packet) []byte {
	dst = appendHeader(dst, KindPackets, id, len(pkts))
	if len(pkts) == 0 {
		return dst
	}
	// The input names, once each.
	var names []string
	index := make([]byte, len(pkts))
	for i := range pkts {
		j := 0
		for j < len(names) && names[j] != pkts[i].Input {
			j++
		}
		if j == len(names) {
			if len(names) == 255 {
				j = 0 // more inputs than a batch ever carries: keep the first name
			} else {
				names = append(names, pkts[i].Input)
			}
		}
		index[i] = byte(j)
	}
	dst = append(dst, byte(len(names)))
	for _, n := range names {
		dst = binary.AppendUvarint(dst, uint64(len(n)))
		dst = append(dst, n...)
	}
	t0 := pkts[0].Received
	for i := range pkts {
		t0 = min(t0, pkts[i].Received)
	}
	dst = binary.AppendUvarint(dst, uint64(t0))
	for i := range pkts {
		p := &pkts[i]
		dst = append(dst, index[i])
		dst = appendAddr(dst, p.Exporter.Addr())
		dst = binary.BigEndian.AppendUint16(dst, p.Exporter.Port())
		dst = binary.AppendUvarint(dst, uint64(p.Received-t0))
		dst = binary.AppendUvarint(dst, uint64(len(p.Data)))
		dst = append(dst, p.Data...)
	}
	return dst
}

// DecodePackets decodes a packet batch, appending its packets to b.Packets
// (payloads are copied into b.Arena), and returns the batch id. On error
// b.Packets is as it was.
func DecodePackets(b *core.Batch, data []byte) (uint64, error) {
	h, rest, err := ReadHeader(data)
	if err != nil {
		return 0, err
	}
	if h.Kind != KindPackets {
		return 0, fmt.Errorf("%w: kind %d, want packets", ErrFormat, h.Kind)
	}
	if h.Count == 0 {
		return h.ID, nil
	}
	r := reader{buf: rest}
	names := make([]string, r.byte("input names"))
	for i := range names {
		names[i] = string(r.bytes(r.uvarint("name length"), "input name"))
	}
	t0 := int64(r.uvarint("first arrival"))
	if need := len(b.Arena) + len(r.buf); cap(b.Arena) < need {
		arena := make([]byte, len(b.Arena), need)
		copy(arena, b.Arena)
		b.Arena = arena
	}
	base := len(b.Packets)
	for range h.Count {
		var p core.Packet
		ni := int(r.byte("input index"))
		a := r.addr("exporter")
		port := r.bytes(2, "exporter port")
		p.Received = t0 + int64(r.uvarint("arrival"))
		payload := r.bytes(r.uvarint("payload length"), "payload")
		if r.err != nil {
			break
		}
		if ni >= len(names) {
			r.err = fmt.Errorf("%w: input index %d of %d names", ErrFormat, ni, len(names))
			break
		}
		p.Input = names[ni]
		p.Exporter = netip.AddrPortFrom(a, binary.BigEndian.Uint16(port))
		start := len(b.Arena)
		b.Arena = append(b.Arena, payload...)
		p.Data = b.Arena[start:len(b.Arena):len(b.Arena)]
		b.Packets = append(b.Packets, p)
	}
	if r.err == nil && len(r.buf) != 0 {
		r.err = fmt.Errorf("%w: %d bytes after the last packet", ErrFormat, len(r.buf))
	}
	if r.err != nil {
		clear(b.Packets[base:])
		b.Packets = b.Packets[:base]
		return 0, r.err
	}
	return h.ID, nil
}
