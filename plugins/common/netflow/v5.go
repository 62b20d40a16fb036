package netflow

import (
	"fmt"
	"net/netip"

	"github.com/flowline/flowline/core"
)

const (
	v5HeaderLen = 24
	v5RecordLen = 48
)

// DecodeV5 decodes one NetFlow v5 datagram and appends its flow records to b.
// It returns the number of records appended. When the header count claims
// more records than the datagram holds, the records present are appended and
// an error wrapping ErrMalformed is returned. Trailing bytes after the
// counted records are ignored.
func DecodeV5(data []byte, exporter netip.AddrPort, received int64, b *core.Batch) (int, error) {
	if len(data) < v5HeaderLen {
		return 0, fmt.Errorf("netflow v5: header needs %d bytes, datagram has %d: %w", v5HeaderLen, len(data), ErrMalformed)
	}
	if v := be16(data); v != 5 {
		return 0, fmt.Errorf("netflow v5: version %d: %w", v, ErrVersion)
	}
	count := int(be16(data[2:]))
	uptime := be32(data[4:])
	secs := int64(be32(data[8:]))
	nsecs := int64(be32(data[12:]))
	domain := uint32(data[20])<<8 | uint32(data[21])
	rate := uint32(be16(data[22:]) & 0x3FFF)
	exportNs := secs*1e9 + nsecs
	avail := (len(data) - v5HeaderLen) / v5RecordLen
	n := min(count, avail)
	addr := exporter.Addr().Unmap()
	port := exporter.Port()
	const present = core.FieldSrcAddr | core.FieldDstAddr | core.FieldNextHop | core.FieldSrcPort |
		core.FieldDstPort | core.FieldProto | core.FieldTCPFlags | core.FieldTOS | core.FieldSrcMask |
		core.FieldDstMask | core.FieldSrcAS | core.FieldDstAS | core.FieldInIface | core.FieldOutIface |
		core.FieldPackets | core.FieldBytes | core.FieldStart | core.FieldEnd | core.FieldExporter
	for i := 0; i < n; i++ {
		p := data[v5HeaderLen+i*v5RecordLen : v5HeaderLen+(i+1)*v5RecordLen]
		r := b.AppendRecord()
		r.Exporter = addr
		r.ExporterPort = port
		r.Version = 5
		r.Domain = domain
		r.Received = received
		r.SrcAddr = netip.AddrFrom4([4]byte(p[0:4]))
		r.DstAddr = netip.AddrFrom4([4]byte(p[4:8]))
		r.NextHop = netip.AddrFrom4([4]byte(p[8:12]))
		r.InIface = uint32(be16(p[12:]))
		r.OutIface = uint32(be16(p[14:]))
		r.Packets = uint64(be32(p[16:]))
		r.Bytes = uint64(be32(p[20:]))
		r.Start = exportNs - int64(int32(uptime-be32(p[24:])))*1e6
		r.End = exportNs - int64(int32(uptime-be32(p[28:])))*1e6
		r.SrcPort = be16(p[32:])
		r.DstPort = be16(p[34:])
		r.TCPFlags = p[37]
		r.Proto = p[38]
		r.TOS = p[39]
		r.SrcAS = uint32(be16(p[40:]))
		r.DstAS = uint32(be16(p[42:]))
		r.SrcMask = p[44]
		r.DstMask = p[45]
		r.Flows = 1
		r.Present = present
		if rate != 0 {
			r.SamplingRate = rate
			r.Present |= core.FieldSamplingRate
		}
	}
	if count > avail {
		return n, fmt.Errorf("netflow v5: header count %d but only %d records in %d bytes: %w", count, avail, len(data), ErrMalformed)
	}
	return n, nil
}
