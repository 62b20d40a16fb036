package flowgen

import (
	"encoding/binary"
	"fmt"
)

// This file holds a small NetFlow v5/v9/IPFIX parser written for the tests
// from the RFCs, independent of the encoder's tables: it learns templates
// from the datagrams and walks records with them.

type tfield struct{ id, length int }

type ptemplate struct {
	fields []tfield
	scope  int // number of scope fields (options templates)
}

// prec is one decoded record: element id to raw value.
type prec map[int][]byte

func (r prec) uint(id int) uint64 {
	var v uint64
	for _, c := range r[id] {
		v = v<<8 | uint64(c)
	}
	return v
}

type pheader struct {
	version  int
	count    int // v5/v9 count field
	length   int // IPFIX length field
	uptime   uint32
	secs     uint32
	nsecs    uint32
	seq      uint32
	domain   uint32
	sampling uint16 // v5
	engineID uint8
}

type ppacket struct {
	hdr        pheader
	templates  []uint16
	optTmpls   []uint16
	records    []prec // flow data records
	options    []prec // options data records
	unknownSet int    // data sets without a known template
}

type tkey struct {
	domain uint32
	id     uint16
}

// parser keeps templates per (domain, template id).
type parser struct {
	tmpl map[tkey]ptemplate
}

func newParser() *parser { return &parser{tmpl: map[tkey]ptemplate{}} }

var bo = binary.BigEndian

func (p *parser) parse(b []byte) (*ppacket, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("short packet")
	}
	switch v := bo.Uint16(b); v {
	case 5:
		return parseV5(b)
	case 9:
		return p.parseV9(b)
	case 10:
		return p.parseIPFIX(b)
	default:
		return nil, fmt.Errorf("version %d", v)
	}
}

func parseV5(b []byte) (*ppacket, error) {
	if len(b) < 24 {
		return nil, fmt.Errorf("v5 short header")
	}
	pk := &ppacket{hdr: pheader{
		version: 5, count: int(bo.Uint16(b[2:])), uptime: bo.Uint32(b[4:]), secs: bo.Uint32(b[8:]),
		nsecs: bo.Uint32(b[12:]), seq: bo.Uint32(b[16:]), engineID: b[21], sampling: bo.Uint16(b[22:]),
	}}
	if len(b) != 24+48*pk.hdr.count {
		return nil, fmt.Errorf("v5 length %d for count %d", len(b), pk.hdr.count)
	}
	for i := range pk.hdr.count {
		r := b[24+48*i:]
		pk.records = append(pk.records, prec{
			8: r[0:4], 12: r[4:8], 15: r[8:12], 10: r[12:14], 14: r[14:16], 2: r[16:20], 1: r[20:24],
			22: r[24:28], 21: r[28:32], 7: r[32:34], 11: r[34:36], 6: r[37:38], 4: r[38:39], 5: r[39:40],
			16: r[40:42], 17: r[42:44], 9: r[44:45], 13: r[45:46],
		})
	}
	return pk, nil
}

func (p *parser) parseV9(b []byte) (*ppacket, error) {
	if len(b) < 20 {
		return nil, fmt.Errorf("v9 short header")
	}
	pk := &ppacket{hdr: pheader{
		version: 9, count: int(bo.Uint16(b[2:])), uptime: bo.Uint32(b[4:]), secs: bo.Uint32(b[8:]),
		seq: bo.Uint32(b[12:]), domain: bo.Uint32(b[16:]),
	}}
	return pk, p.sets(pk, b[20:], 0, 1)
}

func (p *parser) parseIPFIX(b []byte) (*ppacket, error) {
	if len(b) < 16 {
		return nil, fmt.Errorf("ipfix short header")
	}
	pk := &ppacket{hdr: pheader{
		version: 10, length: int(bo.Uint16(b[2:])), secs: bo.Uint32(b[4:]), seq: bo.Uint32(b[8:]), domain: bo.Uint32(b[12:]),
	}}
	if pk.hdr.length != len(b) {
		return nil, fmt.Errorf("ipfix length %d, datagram %d", pk.hdr.length, len(b))
	}
	return pk, p.sets(pk, b[16:], 2, 3)
}

// sets walks the sets; tid and oid are the template and options template
// set ids (0 and 1 for v9, 2 and 3 for IPFIX).
func (p *parser) sets(pk *ppacket, b []byte, tid, oid uint16) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("trailing %d bytes", len(b))
		}
		id, l := bo.Uint16(b), int(bo.Uint16(b[2:]))
		if l < 4 || l > len(b) {
			return fmt.Errorf("set %d length %d of %d", id, l, len(b))
		}
		body := b[4:l]
		b = b[l:]
		switch {
		case id == tid:
			for len(body) >= 4 {
				t, n := bo.Uint16(body), int(bo.Uint16(body[2:]))
				body = body[4:]
				if len(body) < 4*n {
					return fmt.Errorf("template %d truncated", t)
				}
				var fs []tfield
				for i := range n {
					fs = append(fs, tfield{int(bo.Uint16(body[4*i:])), int(bo.Uint16(body[4*i+2:]))})
				}
				body = body[4*n:]
				p.tmpl[tkey{pk.hdr.domain, t}] = ptemplate{fields: fs}
				pk.templates = append(pk.templates, t)
			}
		case id == oid:
			for len(body) >= 6 {
				t := bo.Uint16(body)
				var nscope, nall int
				if tid == 0 { // v9: lengths in bytes
					nscope, nall = int(bo.Uint16(body[2:]))/4, (int(bo.Uint16(body[2:]))+int(bo.Uint16(body[4:])))/4
				} else {
					nall, nscope = int(bo.Uint16(body[2:])), int(bo.Uint16(body[4:]))
				}
				body = body[6:]
				if len(body) < 4*nall {
					return fmt.Errorf("options template %d truncated", t)
				}
				var fs []tfield
				for i := range nall {
					fs = append(fs, tfield{int(bo.Uint16(body[4*i:])), int(bo.Uint16(body[4*i+2:]))})
				}
				body = body[4*nall:]
				p.tmpl[tkey{pk.hdr.domain, t}] = ptemplate{fields: fs, scope: nscope}
				pk.optTmpls = append(pk.optTmpls, t)
				if tid == 0 {
					break // the rest is padding
				}
			}
		case id >= 256:
			t, ok := p.tmpl[tkey{pk.hdr.domain, id}]
			if !ok {
				pk.unknownSet++
				continue
			}
			rl := 0
			for _, f := range t.fields {
				rl += f.length
			}
			for len(body) >= rl {
				r := prec{}
				off := 0
				for _, f := range t.fields {
					r[f.id] = body[off : off+f.length]
					off += f.length
				}
				body = body[rl:]
				if t.scope > 0 {
					pk.options = append(pk.options, r)
				} else {
					pk.records = append(pk.records, r)
				}
			}
			for _, c := range body {
				if c != 0 {
					return fmt.Errorf("non-zero padding in set %d", id)
				}
			}
		default:
			return fmt.Errorf("unexpected set id %d", id)
		}
	}
	return nil
}
