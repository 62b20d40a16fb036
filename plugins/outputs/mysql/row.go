package mysql

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/flowline/flowline/core"
)

// row is the part of a record the output writes: what Write copies out of
// the batch into the buffer (the batch is not kept after Write returns).
type row struct {
	SrcAddr, DstAddr, Exporter netip.Addr
	Inserted, Updated          int64 // Unix seconds
	Packets, Bytes, Flows      uint64
	SrcAS, DstAS               uint32
	InIface, OutIface          uint32
	SamplingRate               uint32
	VLAN, SrcPort, DstPort     uint16
	SrcMAC, DstMAC             [6]byte
	Proto, TCPFlags, TOS       uint8
	SrcMask, DstMask           uint8
}

// fromRecord copies r's values; fields outside mask (the primitives the
// output writes) are left zero, as pmacct writes an unselected column.
func (w *row) fromRecord(r *core.Record, mask core.Field, now int64) {
	*w = row{Packets: r.Packets, Bytes: r.Bytes}
	if r.Present&core.FieldFlows != 0 {
		w.Flows = r.Flows
	}
	if r.Present&core.FieldStamps != 0 {
		w.Inserted, w.Updated = floorSec(r.StampInserted), floorSec(r.StampUpdated)
	} else {
		w.Inserted, w.Updated = now, now
	}
	m := r.Present & mask
	if m&(core.FieldSrcAddr|core.FieldSrcNet) != 0 {
		w.SrcAddr = r.SrcAddr
	}
	if m&(core.FieldDstAddr|core.FieldDstNet) != 0 {
		w.DstAddr = r.DstAddr
	}
	if m&core.FieldExporter != 0 {
		w.Exporter = r.Exporter
	}
	if m&core.FieldSrcAS != 0 {
		w.SrcAS = r.SrcAS
	}
	if m&core.FieldDstAS != 0 {
		w.DstAS = r.DstAS
	}
	if m&core.FieldInIface != 0 {
		w.InIface = r.InIface
	}
	if m&core.FieldOutIface != 0 {
		w.OutIface = r.OutIface
	}
	if m&core.FieldSamplingRate != 0 {
		w.SamplingRate = r.SamplingRate
	}
	if m&core.FieldVLAN != 0 {
		w.VLAN = r.VLAN
	}
	if m&core.FieldSrcPort != 0 {
		w.SrcPort = r.SrcPort
	}
	if m&core.FieldDstPort != 0 {
		w.DstPort = r.DstPort
	}
	if m&core.FieldSrcMAC != 0 {
		w.SrcMAC = r.SrcMAC
	}
	if m&core.FieldDstMAC != 0 {
		w.DstMAC = r.DstMAC
	}
	if m&core.FieldProto != 0 {
		w.Proto = r.Proto
	}
	if m&core.FieldTCPFlags != 0 {
		w.TCPFlags = r.TCPFlags
	}
	if m&core.FieldTOS != 0 {
		w.TOS = r.TOS
	}
	if m&(core.FieldSrcMask|core.FieldSrcNet) != 0 {
		w.SrcMask = r.SrcMask
	}
	if m&(core.FieldDstMask|core.FieldDstNet) != 0 {
		w.DstMask = r.DstMask
	}
}

func floorSec(ns int64) int64 {
	s := ns / 1e9
	if ns < 0 && ns%1e9 != 0 {
		s--
	}
	return s
}

// appendRow encodes w for the spool file.
func appendRow(b []byte, w *row) []byte {
	for _, a := range []netip.Addr{w.SrcAddr, w.DstAddr, w.Exporter} {
		s := a.AsSlice()
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	for _, v := range []uint64{uint64(w.Inserted), uint64(w.Updated), w.Packets, w.Bytes, w.Flows} {
		b = binary.AppendUvarint(b, v)
	}
	for _, v := range []uint32{w.SrcAS, w.DstAS, w.InIface, w.OutIface, w.SamplingRate, uint32(w.VLAN), uint32(w.SrcPort), uint32(w.DstPort)} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	b = append(b, w.SrcMAC[:]...)
	b = append(b, w.DstMAC[:]...)
	return append(b, w.Proto, w.TCPFlags, w.TOS, w.SrcMask, w.DstMask)
}

var errShort = errors.New("truncated row")

// decodeRow decodes one row written by appendRow and returns the rest of b.
func decodeRow(b []byte, w *row) ([]byte, error) {
	*w = row{}
	for _, a := range []*netip.Addr{&w.SrcAddr, &w.DstAddr, &w.Exporter} {
		if len(b) < 1 {
			return nil, errShort
		}
		n := int(b[0])
		if len(b) < 1+n || (n != 0 && n != 4 && n != 16) {
			return nil, errShort
		}
		if n > 0 {
			*a, _ = netip.AddrFromSlice(b[1 : 1+n])
		}
		b = b[1+n:]
	}
	var u [13]uint64
	for i := range u {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errShort
		}
		u[i], b = v, b[n:]
	}
	w.Inserted, w.Updated, w.Packets, w.Bytes, w.Flows = int64(u[0]), int64(u[1]), u[2], u[3], u[4]
	w.SrcAS, w.DstAS, w.InIface, w.OutIface, w.SamplingRate = uint32(u[5]), uint32(u[6]), uint32(u[7]), uint32(u[8]), uint32(u[9])
	w.VLAN, w.SrcPort, w.DstPort = uint16(u[10]), uint16(u[11]), uint16(u[12])
	if len(b) < 17 {
		return nil, errShort
	}
	copy(w.SrcMAC[:], b[:6])
	copy(w.DstMAC[:], b[6:12])
	w.Proto, w.TCPFlags, w.TOS, w.SrcMask, w.DstMask = b[12], b[13], b[14], b[15], b[16]
	return b[17:], nil
}
