package netflow

import "encoding/binary"

// kind says what an op does with its value.
type kind uint8

const (
	kSkip kind = iota
	kExt
	kBytes
	kPackets
	kFlows
	kProto
	kTOS
	kTCPFlags
	kSrcPort
	kDstPort
	kSrcV4
	kDstV4
	kSrcV6
	kDstV6
	kSrcMask
	kDstMask
	kInIf
	kOutIf
	kNextHop4
	kNextHop6
	kSrcAS
	kDstAS
	kRelEnd   // 21 LAST_SWITCHED / flowEndSysUpTime
	kRelStart // 22 FIRST_SWITCHED / flowStartSysUpTime
	kSampInterval
	kSamplerID
	kSrcMAC
	kDstMAC
	kVLAN
	kDirection
	kStartSec
	kEndSec
	kStartMs
	kEndMs
	kStartNTP
	kEndNTP
	kSysInit
	kPktInterval
	kPktSpace
)

// varLen is the field length that announces an IPFIX variable-length field.
const varLen = 0xFFFF

type op struct {
	kind   kind
	length uint16 // varLen for variable-length fields
	off    uint16 // offset in the record, valid when the template is fixed-length
	typ    uint16
	ent    uint32
}

// template is a compiled template.
type template struct {
	set      TemplateSet
	ops      []op
	recLen   int  // record length for fixed-length templates
	minLen   int  // smallest record (variable-length fields count 1 byte)
	variable bool // has variable-length fields
	post     bool // needs per-record post processing (relative times, 305/306)
}

// compile turns a template into a flat list of ops.
func compile(ts TemplateSet, keepExt bool) *template {
	t := &template{set: ts}
	present := func(typ uint16) bool {
		for i, f := range ts.Fields {
			if f.Enterprise == 0 && f.Type == typ && f.Length != 0 && !isV9Scope(ts, i) {
				return true
			}
		}
		return false
	}
	first := func(types ...uint16) uint16 {
		for _, ty := range types {
			if present(ty) {
				return ty
			}
		}
		return 0
	}
	bytesSrc := first(1, 85, 231, 23)
	pktsSrc := first(2, 86, 298, 24)
	nhPrimary := present(15) || present(62)
	dstMAC := first(80, 57)
	off := 0
	for i, f := range ts.Fields {
		if f.Length == 0 {
			continue // zero-length fields carry nothing
		}
		k := kSkip
		if f.Enterprise == 0 && !isV9Scope(ts, i) {
			k = kindOf(f.Type, f.Length, bytesSrc, pktsSrc, dstMAC, nhPrimary)
		}
		if k == kSkip && keepExt {
			k = kExt
		}
		switch k {
		case kRelEnd, kRelStart, kPktInterval, kPktSpace, kSysInit:
			t.post = true
		}
		o := op{kind: k, length: f.Length, typ: f.Type, ent: f.Enterprise}
		if f.Length == varLen {
			t.variable = true
			t.minLen++
		} else {
			o.off = uint16(off)
			off += int(f.Length)
			t.minLen += int(f.Length)
		}
		// Merge adjacent fixed-length skips into one.
		if n := len(t.ops); k == kSkip && f.Length != varLen && n > 0 {
			if p := &t.ops[n-1]; p.kind == kSkip && p.length != varLen && int(p.length)+int(f.Length) < varLen {
				p.length += f.Length
				continue
			}
		}
		t.ops = append(t.ops, o)
	}
	if !t.variable {
		t.recLen = off
	}
	return t
}

func isV9Scope(ts TemplateSet, i int) bool {
	return ts.Version == 9 && ts.Options && i < int(ts.ScopeFieldCount)
}

// kindOf maps an IANA / v9 element to the op that types it, or kSkip.
func kindOf(typ, l uint16, bytesSrc, pktsSrc, dstMAC uint16, nhPrimary bool) kind {
	counter := l >= 1 && l <= 8
	small := func(max uint16) bool { return l >= 1 && l <= max }
	switch typ {
	case 1, 85, 23, 231:
		if typ == bytesSrc && counter {
			return kBytes
		}
	case 2, 86, 24, 298:
		if typ == pktsSrc && counter {
			return kPackets
		}
	case 3:
		if counter {
			return kFlows
		}
	case 4:
		if l == 1 {
			return kProto
		}
	case 5:
		if l == 1 {
			return kTOS
		}
	case 6:
		if small(2) {
			return kTCPFlags
		}
	case 7:
		if small(2) {
			return kSrcPort
		}
	case 11:
		if small(2) {
			return kDstPort
		}
	case 8:
		if l == 4 {
			return kSrcV4
		}
	case 12:
		if l == 4 {
			return kDstV4
		}
	case 27:
		if l == 16 {
			return kSrcV6
		}
	case 28:
		if l == 16 {
			return kDstV6
		}
	case 9, 29:
		if l == 1 {
			return kSrcMask
		}
	case 13, 30:
		if l == 1 {
			return kDstMask
		}
	case 10:
		if small(4) {
			return kInIf
		}
	case 14:
		if small(4) {
			return kOutIf
		}
	case 15, 18:
		if l == 4 && (typ == 15 || !nhPrimary) {
			return kNextHop4
		}
	case 62, 63:
		if l == 16 && (typ == 62 || !nhPrimary) {
			return kNextHop6
		}
	case 16:
		if small(4) {
			return kSrcAS
		}
	case 17:
		if small(4) {
			return kDstAS
		}
	case 21:
		if small(4) {
			return kRelEnd
		}
	case 22:
		if small(4) {
			return kRelStart
		}
	case 34, 50:
		if small(4) {
			return kSampInterval
		}
	case 48, 302:
		if small(4) {
			return kSamplerID
		}
	case 56:
		if l == 6 {
			return kSrcMAC
		}
	case 57, 80:
		if l == 6 && typ == dstMAC {
			return kDstMAC
		}
	case 58:
		if small(2) {
			return kVLAN
		}
	case 61:
		if l == 1 {
			return kDirection
		}
	case 150:
		if small(4) {
			return kStartSec
		}
	case 151:
		if small(4) {
			return kEndSec
		}
	case 152:
		if counter {
			return kStartMs
		}
	case 153:
		if counter {
			return kEndMs
		}
	case 154, 156:
		if l == 8 {
			return kStartNTP
		}
	case 155, 157:
		if l == 8 {
			return kEndNTP
		}
	case 160:
		if counter {
			return kSysInit
		}
	case 305:
		if small(4) {
			return kPktInterval
		}
	case 306:
		if small(4) {
			return kPktSpace
		}
	}
	return kSkip
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

// readUint reads a big-endian unsigned integer of 1 to 8 bytes (reduced-size
// encoding).
func readUint(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	case 8:
		return binary.BigEndian.Uint64(b)
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// ntpToUnixNano converts a 64-bit NTP timestamp (seconds since 1900 and a
// 32-bit fraction) to Unix nanoseconds.
func ntpToUnixNano(v uint64) int64 {
	const ntpEpochOffset = 2208988800
	sec := int64(v>>32) - ntpEpochOffset
	frac := (v & 0xFFFFFFFF) * 1e9 >> 32
	return sec*1e9 + int64(frac)
}
