// Package core holds the types every Flowline plugin shares: the two payloads
// that travel through the pipeline (Packet and Record), the Batch that carries
// them, and the Input, Processor and Output interfaces.
package core

import (
	"net/netip"
)

// Field is one bit of a Record's Present mask: it tells which typed fields the
// exporter (or a processor) actually set, so that printing an unaggregated
// record shows what was decoded and nothing else.
type Field uint64

// The typed fields of a Record. Keep the order: the print output lists fields
// in this order.
const (
	FieldSrcAddr Field = 1 << iota
	FieldDstAddr
	FieldNextHop
	FieldSrcPort
	FieldDstPort
	FieldProto
	FieldTCPFlags
	FieldTOS
	FieldSrcMask
	FieldDstMask
	FieldSrcAS
	FieldDstAS
	FieldInIface
	FieldOutIface
	FieldPackets
	FieldBytes
	FieldFlows
	FieldSamplingRate
	FieldSamplerID
	FieldStart
	FieldEnd
	FieldSrcMAC
	FieldDstMAC
	FieldVLAN
	FieldDirection
	FieldStamps // StampInserted and StampUpdated are set (aggregated records).
	FieldExporter
	// FieldSrcNet says SrcAddr holds the source network (the address masked
	// by SrcMask), as the src_net primitive keys it; FieldDstNet likewise.
	FieldSrcNet
	FieldDstNet
	// FieldTag and FieldTag2 are pmacct's tag and tag2: numbers a processor
	// sets to classify a flow (a customer, a site), such as the example
	// processor-netmap from a table of prefixes.
	FieldTag
	FieldTag2
)

// Flags carry processing state that is not a flow property.
type Flags uint8

const (
	// FlagRenormalized marks a record whose packets and bytes were already
	// multiplied by its sampling rate, so that no second processor does it again.
	FlagRenormalized Flags = 1 << iota
	// FlagOptions marks a record decoded from an options data set (exporter
	// metadata such as sampler tables), not a flow.
	FlagOptions
)

// Record is one flow: decoded from an export packet, or an aggregate of many.
//
// It is a plain struct of typed values so that the hot path (decode, sample,
// aggregate) allocates nothing per flow. Timestamps are Unix nanoseconds, 0
// meaning unknown. Addresses are netip.Addr; an IPv4 flow holds 4-byte
// addresses (never IPv4-mapped IPv6).
type Record struct {
	// Exporter is the address of the device that exported the flow
	// (pmacct's peer_ip_src): the datagram's source, or the address carried
	// in the replicator's envelope.
	Exporter     netip.Addr
	ExporterPort uint16
	// Version is the export protocol: 5, 9 or 10 (IPFIX).
	Version uint16
	// Domain is the NetFlow v9 source id or IPFIX observation domain id; for
	// v5 it is engine_type<<8 | engine_id.
	Domain uint32
	// TemplateID is the template (or set id) the record was decoded with; 0 for v5.
	TemplateID uint16

	Flags    Flags
	Proto    uint8
	TCPFlags uint8
	TOS      uint8
	SrcMask  uint8
	DstMask  uint8
	// Direction is 0 for ingress and 1 for egress when the exporter says so.
	Direction uint8

	SrcPort uint16
	DstPort uint16
	VLAN    uint16

	SrcAddr netip.Addr
	DstAddr netip.Addr
	NextHop netip.Addr
	SrcMAC  [6]byte
	DstMAC  [6]byte

	SrcAS    uint32
	DstAS    uint32
	InIface  uint32
	OutIface uint32
	// Tag and Tag2 are pmacct's tag and tag2 (set by processors).
	Tag  uint32
	Tag2 uint32

	Packets uint64
	Bytes   uint64
	Flows   uint64

	// SamplingRate is 1-in-N packet sampling: announced by the exporter (v5
	// header, options data, the record itself) or applied by processors.sampling.
	SamplingRate uint32
	SamplerID    uint32

	// Start and End are the flow's first and last packet times.
	Start int64
	End   int64
	// Received is when the datagram carrying the record arrived.
	Received int64
	// StampInserted is the start of the aggregation time bin and StampUpdated
	// the time the aggregate was last written (pmacct's stamp_inserted and
	// stamp_updated); both are set only by the aggregate processor.
	StampInserted int64
	StampUpdated  int64

	// Present tells which of the typed fields above carry a value.
	Present Field
	// Ext holds elements that have no typed field (vendor and rarely used
	// IANA elements). It is filled only when a pipeline asks for extensions;
	// its Value slices point into memory owned by the Batch.
	Ext []Extension
}

// Has reports whether all fields in f are present.
func (r *Record) Has(f Field) bool { return r.Present&f == f }

// Extension is an information element without a typed Record field.
type Extension struct {
	Enterprise uint32 // IPFIX private enterprise number; 0 for IANA / NetFlow v9.
	Type       uint16 // element id (without the enterprise bit).
	Value      []byte // raw value in network byte order.
}
