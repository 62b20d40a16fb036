package envelope

import (
	"encoding/binary"
	"errors"
)

// Kind says what an export datagram holds, as far as a replicator cares.
type Kind uint8

// Kind bits.
const (
	// KindData: the datagram holds flow data (any NetFlow v5 datagram, or
	// v9/IPFIX data sets).
	KindData Kind = 1 << iota
	// KindTemplates: the datagram holds template or options template sets.
	KindTemplates
)

// ErrNotNetFlow is returned by Scan for a datagram that is not NetFlow
// v5, v9 or IPFIX, or whose sets do not add up.
var ErrNotNetFlow = errors.New("not a NetFlow v5/v9 or IPFIX datagram")

const (
	v9HeaderLen    = 20
	ipfixHeaderLen = 16
)

// Scan walks the set headers of an export datagram (never its records) and
// says whether it holds templates, data or both. It does not allocate.
func Scan(data []byte) (Kind, error) {
	if len(data) < 4 {
		return 0, ErrNotNetFlow
	}
	var k Kind
	err := walk(data, func(id uint16, _ []byte, template bool) {
		if template {
			k |= KindTemplates
		} else if id >= 256 {
			k |= KindData
		}
	})
	return k, err
}

// walk calls fn for every set of a v9/IPFIX datagram with its id, the whole
// set (header included) and whether it is a template or options template
// set. A v5 datagram is reported as one data set.
func walk(data []byte, fn func(id uint16, set []byte, template bool)) error {
	var off, tpl, opt int
	switch binary.BigEndian.Uint16(data) {
	case 5:
		if len(data) < 24 {
			return ErrNotNetFlow
		}
		fn(256, data, false)
		return nil
	case 9:
		off, tpl, opt = v9HeaderLen, 0, 1
	case 10:
		off, tpl, opt = ipfixHeaderLen, 2, 3
		if l := int(binary.BigEndian.Uint16(data[2:])); l >= ipfixHeaderLen && l < len(data) {
			data = data[:l]
		}
	default:
		return ErrNotNetFlow
	}
	if len(data) < off {
		return ErrNotNetFlow
	}
	for len(data)-off >= 4 {
		id := int(binary.BigEndian.Uint16(data[off:]))
		l := int(binary.BigEndian.Uint16(data[off+2:]))
		if l < 4 || off+l > len(data) {
			if allZero(data[off:]) {
				return nil
			}
			return ErrNotNetFlow
		}
		fn(uint16(id), data[off:off+l], id == tpl || id == opt)
		off += l
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Walk calls fn for every set of a v9/IPFIX datagram with its id, the
// whole set (header included, aliasing data) and whether it is a template or
// options template set. A v5 datagram is reported as one data set with id
// 256. It does not allocate.
func Walk(data []byte, fn func(id uint16, set []byte, template bool)) error {
	if len(data) < 4 {
		return ErrNotNetFlow
	}
	return walk(data, fn)
}

// HeaderLen9or10 is the export header length of a v9 (20) or IPFIX (16)
// datagram, 0 for anything else.
func HeaderLen9or10(data []byte) int {
	if len(data) < 4 {
		return 0
	}
	switch binary.BigEndian.Uint16(data) {
	case 9:
		return v9HeaderLen
	case 10:
		return ipfixHeaderLen
	}
	return 0
}

// AppendSets appends to dst a copy of the v9/IPFIX datagram data with its
// header and only the sets keep accepts (the header's v9 record count or
// IPFIX length adjusted), so that receivers that do not get the data still
// learn the templates (and, say, the sampling options). It returns dst
// unchanged when no set is kept. It does not allocate when dst has room.
func AppendSets(dst, data []byte, keep func(id uint16, template bool) bool) []byte {
	hl := HeaderLen9or10(data)
	if hl == 0 || len(data) < hl {
		return dst
	}
	v := binary.BigEndian.Uint16(data)
	start := len(dst)
	dst = append(dst, data[:hl]...)
	count := 0
	_ = walk(data, func(id uint16, set []byte, template bool) {
		if !keep(id, template) {
			return
		}
		dst = append(dst, set...)
		if template {
			count += countTemplates(v, id, set[4:])
		} else {
			count++
		}
	})
	if len(dst) == start+hl {
		return dst[:start]
	}
	FixHeader(dst[start:], count)
	return dst
}

// FixHeader sets the v9 record count or the IPFIX message length of the
// export datagram dg after its sets were rearranged.
func FixHeader(dg []byte, v9count int) {
	if len(dg) < 4 {
		return
	}
	if binary.BigEndian.Uint16(dg) == 9 {
		binary.BigEndian.PutUint16(dg[2:], uint16(v9count))
	} else {
		binary.BigEndian.PutUint16(dg[2:], uint16(len(dg)))
	}
}

// TemplateRecord is one template record of a template set, as found in a
// datagram.
type TemplateRecord struct {
	// SetID is the id of the set the record came from (v9: 0 or 1, IPFIX: 2 or 3).
	SetID uint16
	// ID is the template id.
	ID uint16
	// Record is the record's bytes (aliasing the datagram).
	Record []byte
}

// TemplateRecords calls fn for every template record of a v9/IPFIX
// datagram, so that a replicator can cache the latest version of each
// template. AppendSet(dst, r.SetID, r.Record) rebuilds a set of one record.
func TemplateRecords(data []byte, fn func(TemplateRecord)) {
	if len(data) < 4 {
		return
	}
	v := binary.BigEndian.Uint16(data)
	if v != 9 && v != 10 {
		return
	}
	_ = walk(data, func(id uint16, set []byte, template bool) {
		if !template {
			return
		}
		body := set[4:]
		for len(body) >= 4 {
			n := templateRecordLen(v, id, body)
			if n <= 0 || n > len(body) {
				return
			}
			fn(TemplateRecord{SetID: id, ID: binary.BigEndian.Uint16(body), Record: body[:n]})
			body = body[n:]
		}
	})
}

// templateRecordLen is the length of the template record at the start of
// body, or 0 when there is none (padding) or it is malformed.
func templateRecordLen(v, setID uint16, body []byte) int {
	if len(body) < 4 {
		return 0
	}
	id := binary.BigEndian.Uint16(body)
	if v == 9 {
		if setID == 1 {
			if len(body) < 6 || id < 256 {
				return 0
			}
			return 6 + int(binary.BigEndian.Uint16(body[2:])) + int(binary.BigEndian.Uint16(body[4:]))
		}
		if id < 256 {
			return 0
		}
		return 4 + 4*int(binary.BigEndian.Uint16(body[2:]))
	}
	fields := int(binary.BigEndian.Uint16(body[2:]))
	off := 4
	if setID == 3 && fields > 0 {
		off = 6
	}
	if fields == 0 {
		return 4 // withdrawal
	}
	for i := 0; i < fields; i++ {
		if off+4 > len(body) {
			return 0
		}
		t := binary.BigEndian.Uint16(body[off:])
		off += 4
		if t&0x8000 != 0 {
			off += 4
		}
	}
	return off
}

// countTemplates counts the template records of a set body.
func countTemplates(v, setID uint16, body []byte) int {
	n := 0
	for len(body) >= 4 {
		l := templateRecordLen(v, setID, body)
		if l <= 0 || l > len(body) {
			break
		}
		n++
		body = body[l:]
	}
	return n
}

// AppendSet appends a set with id and body (the records, without the set
// header) to dst.
func AppendSet(dst []byte, id uint16, body []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, id)
	dst = binary.BigEndian.AppendUint16(dst, uint16(4+len(body)))
	return append(dst, body...)
}
