package pmacct

import (
	"strconv"
	"time"

	"github.com/flowline/flowline/core"
)

// Encoder writes records in the forms nfacctd 1.7 prints them: JSON lines
// (print_output: json, and the messages of the amqp plugin) and CSV, with
// pmacct's keys, key order and value forms. It caches formatted stamps, so
// it is not safe for concurrent use: give every writer its own.
type Encoder struct {
	// Loc is the zone stamps are printed in: time.Local unless
	// timestamps_utc, as in pmacct. Nil means time.Local.
	Loc *time.Location

	// stamps holds formatted seconds, direct-mapped by the second: the
	// stamps of aggregates repeat, and those of unaggregated flows (start,
	// end, arrival) fall within a few minutes of each other.
	stamps [stampSlots]stampCache
}

// stampSlots is the size of the stamp cache: about four minutes of
// distinct seconds (printing flows with two entries spent 18% of the
// collector's CPU formatting times).
const stampSlots = 256

// column is one printed field, in nfacctd's order.
type column struct {
	field core.Field
	json  string // pmacct's JSON key
	csv   string // pmacct's CSV header
}

// Pseudo fields for columns that are not a single Present bit.
const (
	colArrival core.Field = 1 << 62 // timestamp_arrival: Received, unaggregated records
)

// columns is nfacctd's print order (checked against nfacctd 1.7.7). The
// primitive columns follow core.Primitives (a test checks it); peer_ip_dst
// (the IP next hop with use_ip_next_hop) and the timestamps are the
// non-primitive fields of unaggregated records. stamp_inserted,
// stamp_updated and the counters are printed separately: their order differs
// between JSON and CSV.
var columns = []column{
	{core.FieldTag, "tag", "TAG"},
	{core.FieldTag2, "tag2", "TAG2"},
	{core.FieldSrcMAC, "mac_src", "SRC_MAC"},
	{core.FieldDstMAC, "mac_dst", "DST_MAC"},
	{core.FieldVLAN, "vlan", "VLAN"},
	{core.FieldSrcAS, "as_src", "SRC_AS"},
	{core.FieldDstAS, "as_dst", "DST_AS"},
	{core.FieldExporter, "peer_ip_src", "PEER_SRC_IP"},
	{core.FieldNextHop, "peer_ip_dst", "PEER_DST_IP"},
	{core.FieldInIface, "iface_in", "IN_IFACE"},
	{core.FieldOutIface, "iface_out", "OUT_IFACE"},
	{core.FieldSrcAddr, "ip_src", "SRC_IP"},
	{core.FieldSrcNet, "net_src", "SRC_NET"},
	{core.FieldDstAddr, "ip_dst", "DST_IP"},
	{core.FieldDstNet, "net_dst", "DST_NET"},
	{core.FieldSrcMask, "mask_src", "SRC_MASK"},
	{core.FieldDstMask, "mask_dst", "DST_MASK"},
	{core.FieldSrcPort, "port_src", "SRC_PORT"},
	{core.FieldDstPort, "port_dst", "DST_PORT"},
	{core.FieldTCPFlags, "tcp_flags", "TCP_FLAGS"},
	{core.FieldProto, "ip_proto", "PROTOCOL"},
	{core.FieldTOS, "tos", "TOS"},
	{core.FieldSamplingRate, "sampling_rate", "SAMPLING_RATE"},
	{core.FieldStart, "timestamp_start", "TIMESTAMP_START"},
	{core.FieldEnd, "timestamp_end", "TIMESTAMP_END"},
	{colArrival, "timestamp_arrival", "TIMESTAMP_ARRIVAL"},
}

// present is the record's Present mask plus the pseudo fields it carries.
func present(r *core.Record) core.Field {
	m := r.Present
	if r.Received != 0 && m&core.FieldStamps == 0 {
		m |= colArrival
	}
	return m
}

// AppendJSON appends one JSON line: {"event_type": "purge", ...}.
func (e *Encoder) AppendJSON(b []byte, r *core.Record) []byte {
	m := present(r)
	b = append(b, `{"event_type": "purge"`...)
	for i := range columns {
		c := &columns[i]
		if m&c.field == 0 {
			continue
		}
		b = append(b, `, "`...)
		b = append(b, c.json...)
		b = append(b, `": `...)
		b = e.appendValue(b, r, c.field, true)
	}
	if m&core.FieldStamps != 0 {
		b = append(b, `, "stamp_inserted": "`...)
		b = e.appendStamp(b, r.StampInserted)
		b = append(b, `", "stamp_updated": "`...)
		b = e.appendStamp(b, r.StampUpdated)
		b = append(b, '"')
	}
	if m&core.FieldFlows != 0 {
		b = append(b, `, "flows": `...)
		b = strconv.AppendUint(b, r.Flows, 10)
	}
	if m&core.FieldPackets != 0 {
		b = append(b, `, "packets": `...)
		b = strconv.AppendUint(b, r.Packets, 10)
	}
	if m&core.FieldBytes != 0 {
		b = append(b, `, "bytes": `...)
		b = strconv.AppendUint(b, r.Bytes, 10)
	}
	return append(b, "}\n"...)
}

// AppendCSVHeader appends nfacctd's CSV title line for the record's fields.
// Like nfacctd, CSV has no stamp_inserted/stamp_updated columns, and the
// counters come as PACKETS,FLOWS,BYTES.
func AppendCSVHeader(b []byte, r *core.Record) []byte {
	m := present(r)
	sep := false
	add := func(s string) {
		if sep {
			b = append(b, ',')
		}
		b = append(b, s...)
		sep = true
	}
	for i := range columns {
		if m&columns[i].field != 0 {
			add(columns[i].csv)
		}
	}
	if m&core.FieldPackets != 0 {
		add("PACKETS")
	}
	if m&core.FieldFlows != 0 {
		add("FLOWS")
	}
	if m&core.FieldBytes != 0 {
		add("BYTES")
	}
	return append(b, '\n')
}

// AppendCSV appends one CSV line.
func (e *Encoder) AppendCSV(b []byte, r *core.Record) []byte {
	m := present(r)
	start := len(b)
	for i := range columns {
		c := &columns[i]
		if m&c.field == 0 {
			continue
		}
		if len(b) > start {
			b = append(b, ',')
		}
		b = e.appendValue(b, r, c.field, false)
	}
	if m&core.FieldPackets != 0 {
		if len(b) > start {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, r.Packets, 10)
	}
	if m&core.FieldFlows != 0 {
		if len(b) > start {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, r.Flows, 10)
	}
	if m&core.FieldBytes != 0 {
		if len(b) > start {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, r.Bytes, 10)
	}
	return append(b, '\n')
}

// AppendValue appends the value of field f of r as pmacct prints it in CSV
// (unquoted): outputs.amqp fills routing key variables with it.
func (e *Encoder) AppendValue(b []byte, r *core.Record, f core.Field) []byte {
	return e.appendValue(b, r, f, false)
}

// appendValue appends one column's value; quote says whether strings are
// JSON-quoted (none of the values needs escaping).
func (e *Encoder) appendValue(b []byte, r *core.Record, f core.Field, quote bool) []byte {
	q := func(b []byte) []byte {
		if quote {
			return append(b, '"')
		}
		return b
	}
	switch f {
	case core.FieldSrcMAC:
		return q(AppendMAC(q(b), &r.SrcMAC))
	case core.FieldDstMAC:
		return q(AppendMAC(q(b), &r.DstMAC))
	case core.FieldTag:
		return strconv.AppendUint(b, uint64(r.Tag), 10)
	case core.FieldTag2:
		return strconv.AppendUint(b, uint64(r.Tag2), 10)
	case core.FieldVLAN:
		return strconv.AppendUint(b, uint64(r.VLAN), 10)
	case core.FieldSrcAS:
		return strconv.AppendUint(b, uint64(r.SrcAS), 10)
	case core.FieldDstAS:
		return strconv.AppendUint(b, uint64(r.DstAS), 10)
	case core.FieldExporter:
		return q(AppendAddr(q(b), r.Exporter))
	case core.FieldNextHop:
		return q(AppendAddr(q(b), r.NextHop))
	case core.FieldInIface:
		return strconv.AppendUint(b, uint64(r.InIface), 10)
	case core.FieldOutIface:
		return strconv.AppendUint(b, uint64(r.OutIface), 10)
	case core.FieldSrcAddr:
		return q(AppendAddr(q(b), r.SrcAddr))
	case core.FieldSrcNet:
		return q(AppendAddr(q(b), Network(r.SrcAddr, r.SrcMask)))
	case core.FieldDstAddr:
		return q(AppendAddr(q(b), r.DstAddr))
	case core.FieldDstNet:
		return q(AppendAddr(q(b), Network(r.DstAddr, r.DstMask)))
	case core.FieldSrcMask:
		return strconv.AppendUint(b, uint64(r.SrcMask), 10)
	case core.FieldDstMask:
		return strconv.AppendUint(b, uint64(r.DstMask), 10)
	case core.FieldSrcPort:
		return strconv.AppendUint(b, uint64(r.SrcPort), 10)
	case core.FieldDstPort:
		return strconv.AppendUint(b, uint64(r.DstPort), 10)
	case core.FieldTCPFlags:
		return q(strconv.AppendUint(q(b), uint64(r.TCPFlags), 10))
	case core.FieldProto:
		return q(AppendProto(q(b), r.Proto))
	case core.FieldTOS:
		return strconv.AppendUint(b, uint64(r.TOS), 10)
	case core.FieldSamplingRate:
		return strconv.AppendUint(b, uint64(r.SamplingRate), 10)
	case core.FieldStart:
		return q(e.appendMicro(q(b), r.Start))
	case core.FieldEnd:
		return q(e.appendMicro(q(b), r.End))
	case colArrival:
		return q(e.appendMicro(q(b), r.Received))
	}
	return b
}

// stampCache keeps the formatted "YYYY-MM-DD HH:MM:SS" of one second: a batch
// of aggregates shares one or two stamps, so formatting happens rarely.
type stampCache struct {
	ok  bool
	sec int64
	b   [19]byte
}

const stampLayout = "2006-01-02 15:04:05"

// appendStamp appends a Unix-nanosecond stamp as "YYYY-MM-DD HH:MM:SS" in the
// configured zone.
func (e *Encoder) appendStamp(b []byte, ns int64) []byte {
	sec := ns / 1e9
	if ns < 0 && ns%1e9 != 0 {
		sec--
	}
	c := &e.stamps[uint64(sec)%stampSlots]
	if c.ok && c.sec == sec {
		return append(b, c.b[:]...)
	}
	out := time.Unix(sec, 0).In(e.loc()).AppendFormat(c.b[:0], stampLayout)
	if len(out) != len(c.b) { // years beyond 9999 or before 0: do not cache
		c.ok = false
		return append(b, out...)
	}
	c.ok, c.sec = true, sec
	return append(b, c.b[:]...)
}

// appendMicro appends "YYYY-MM-DD HH:MM:SS.uuuuuu" (timestamp_start, _end,
// _arrival, as nfacctd prints them without timestamps_secs).
func (e *Encoder) appendMicro(b []byte, ns int64) []byte {
	b = e.appendStamp(b, ns)
	frac := ns % 1e9
	if frac < 0 {
		frac += 1e9
	}
	us := frac / 1000
	b = append(b, '.')
	var d [6]byte
	for i := 5; i >= 0; i-- {
		d[i] = byte('0' + us%10)
		us /= 10
	}
	return append(b, d[:]...)
}

func (e *Encoder) loc() *time.Location {
	if e.Loc == nil {
		return time.Local
	}
	return e.Loc
}
