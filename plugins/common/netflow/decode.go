package netflow

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/flowline/flowline/core"
)

const (
	v9HeaderLen    = 20
	ipfixHeaderLen = 16
)

// msgCtx is the header context a data set is decoded in.
type msgCtx struct {
	exporter   netip.AddrPort
	received   int64
	version    uint16
	domain     uint32
	exportSecs uint32
	sysUptime  uint32 // v9 only
	sampler    *samplerState
	samplerOK  bool // sampler was looked up
}

func (c *msgCtx) name() string {
	if c.version == 9 {
		return "netflow v9"
	}
	return "ipfix"
}

func (d *Decoder) decodeV9(pkt core.Packet, b *core.Batch, st *DecodeStats) error {
	data := pkt.Data
	if len(data) < v9HeaderLen {
		return fmt.Errorf("netflow v9 from %s: header needs %d bytes, datagram has %d: %w", pkt.Exporter, v9HeaderLen, len(data), ErrMalformed)
	}
	ctx := msgCtx{
		exporter:   netip.AddrPortFrom(pkt.Exporter.Addr().Unmap(), pkt.Exporter.Port()),
		received:   pkt.Received,
		version:    9,
		sysUptime:  be32(data[4:]),
		exportSecs: be32(data[8:]),
		domain:     be32(data[16:]),
	}
	return d.walkSets(&ctx, data, v9HeaderLen, b, st)
}

func (d *Decoder) decodeIPFIX(pkt core.Packet, b *core.Batch, st *DecodeStats) error {
	data := pkt.Data
	if len(data) < ipfixHeaderLen {
		return fmt.Errorf("ipfix from %s: header needs %d bytes, datagram has %d: %w", pkt.Exporter, ipfixHeaderLen, len(data), ErrMalformed)
	}
	msgLen := int(be16(data[2:]))
	if msgLen < ipfixHeaderLen {
		return fmt.Errorf("ipfix from %s: message length %d shorter than its header: %w", pkt.Exporter, msgLen, ErrMalformed)
	}
	// The message length and the datagram length may disagree: trust the
	// smaller one (a longer datagram carries trailing garbage, a shorter one
	// was truncated and the sets will say so).
	if msgLen < len(data) {
		data = data[:msgLen]
	}
	ctx := msgCtx{
		exporter:   netip.AddrPortFrom(pkt.Exporter.Addr().Unmap(), pkt.Exporter.Port()),
		received:   pkt.Received,
		version:    10,
		exportSecs: be32(data[4:]),
		domain:     be32(data[12:]),
	}
	return d.walkSets(&ctx, data, ipfixHeaderLen, b, st)
}

// walkSets walks the (flow)sets of a v9 or IPFIX message, starting at off.
// The v9 header count is not trusted: sets are walked by their length.
func (d *Decoder) walkSets(ctx *msgCtx, data []byte, off int, b *core.Batch, st *DecodeStats) error {
	tplID, optID := uint16(0), uint16(1)
	if ctx.version == 10 {
		tplID, optID = 2, 3
	}
	for len(data)-off >= 4 {
		id := be16(data[off:])
		l := int(be16(data[off+2:]))
		if l < 4 {
			if allZero(data[off:]) {
				return nil // zero fill at the end of the datagram
			}
			return fmt.Errorf("%s from %s: set id %d at offset %d: length %d < 4: %w", ctx.name(), ctx.exporter, id, off, l, ErrMalformed)
		}
		truncated := off+l > len(data)
		end := off + l
		if truncated {
			end = len(data)
		}
		body := data[off+4 : end]
		var err error
		switch {
		case id == tplID || id == optID:
			if truncated {
				break
			}
			err = d.templateSet(ctx, body, off+4, id == optID, b, st)
		case id >= 256:
			// A truncated data set still yields the records it holds in full.
			err = d.dataSet(ctx, id, body, off, b, st)
		}
		if err != nil {
			return err
		}
		if truncated {
			return fmt.Errorf("%s from %s: set id %d at offset %d: length %d runs past the end (%d bytes): %w", ctx.name(), ctx.exporter, id, off, l, len(data), ErrMalformed)
		}
		off = end
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

// templateSet parses a template or options template set body.
func (d *Decoder) templateSet(ctx *msgCtx, body []byte, base int, options bool, b *core.Batch, st *DecodeStats) error {
	off := 0
	learned := time.Unix(0, ctx.received)
	if ctx.received == 0 {
		learned = time.Now()
	}
	for len(body)-off >= 4 {
		recOff := off
		id := be16(body[off:])
		fields := d.scratchFields[:0]
		var scope int
		if ctx.version == 9 {
			if !options {
				count := int(be16(body[off+2:]))
				off += 4
				if id < 256 {
					return nil // padding
				}
				if len(body)-off < 4*count {
					return fmt.Errorf("netflow v9 from %s: template %d at offset %d: %d fields need %d bytes, %d left: %w", ctx.exporter, id, base+recOff, count, 4*count, len(body)-off, ErrMalformed)
				}
				for i := 0; i < count; i++ {
					fields = append(fields, TemplateField{Type: be16(body[off:]), Length: be16(body[off+2:])})
					off += 4
				}
			} else {
				if len(body)-off < 6 {
					return nil // padding
				}
				scopeLen := int(be16(body[off+2:]))
				optLen := int(be16(body[off+4:]))
				off += 6
				if id < 256 {
					return nil // padding
				}
				if scopeLen%4 != 0 || optLen%4 != 0 || len(body)-off < scopeLen+optLen {
					return fmt.Errorf("netflow v9 from %s: options template %d at offset %d: scope length %d, options length %d, %d bytes left: %w", ctx.exporter, id, base+recOff, scopeLen, optLen, len(body)-off, ErrMalformed)
				}
				scope = scopeLen / 4
				for i := 0; i < (scopeLen+optLen)/4; i++ {
					fields = append(fields, TemplateField{Type: be16(body[off:]), Length: be16(body[off+2:])})
					off += 4
				}
			}
		} else {
			count := int(be16(body[off+2:]))
			off += 4
			if options && count > 0 {
				if len(body)-off < 2 {
					return fmt.Errorf("ipfix from %s: options template %d at offset %d: truncated: %w", ctx.exporter, id, base+recOff, ErrMalformed)
				}
				scope = int(be16(body[off:]))
				off += 2
			}
			if id == 2 || id == 3 {
				if count == 0 {
					d.withdrawAll(ctx, options, st)
					continue
				}
				return fmt.Errorf("ipfix from %s: template id %d at offset %d: reserved id: %w", ctx.exporter, id, base+recOff, ErrMalformed)
			}
			if id < 256 {
				return nil // padding
			}
			if count == 0 {
				d.withdraw(ctx, id, st)
				continue
			}
			if scope > count || (options && scope == 0) {
				return fmt.Errorf("ipfix from %s: options template %d at offset %d: scope field count %d of %d fields: %w", ctx.exporter, id, base+recOff, scope, count, ErrMalformed)
			}
			for i := 0; i < count; i++ {
				if len(body)-off < 4 {
					return fmt.Errorf("ipfix from %s: template %d at offset %d: field %d of %d truncated: %w", ctx.exporter, id, base+recOff, i, count, ErrMalformed)
				}
				f := TemplateField{Type: be16(body[off:]) & 0x7FFF, Length: be16(body[off+2:])}
				ent := body[off]&0x80 != 0
				off += 4
				if ent {
					if len(body)-off < 4 {
						return fmt.Errorf("ipfix from %s: template %d at offset %d: enterprise number of field %d truncated: %w", ctx.exporter, id, base+recOff, i, ErrMalformed)
					}
					f.Enterprise = be32(body[off:])
					off += 4
				}
				fields = append(fields, f)
			}
		}
		d.scratchFields = fields[:0]
		st.Templates++
		d.learn(ctx, id, options, uint16(scope), fields, learned, b, st)
	}
	return nil
}

// learn installs or refreshes a template parsed from a datagram.
func (d *Decoder) learn(ctx *msgCtx, id uint16, options bool, scope uint16, fields []TemplateField, learned time.Time, b *core.Batch, st *DecodeStats) {
	k := tkey{exporter: ctx.exporter.Addr(), version: ctx.version, id: id, domain: ctx.domain}
	t, exists := d.templates[k]
	if exists && t.set.Options == options && t.set.ScopeFieldCount == scope && sameFields(t.set.Fields, fields) {
		t.set.Learned = learned
		return
	}
	if !d.admit(k, exists, learned.UnixNano()) {
		st.Refused++
		return
	}
	ts := TemplateSet{
		Exporter:        k.exporter,
		Version:         ctx.version,
		Domain:          ctx.domain,
		ID:              id,
		Options:         options,
		ScopeFieldCount: scope,
		Fields:          append([]TemplateField(nil), fields...),
		Learned:         learned,
	}
	d.put(k, compile(ts, d.cfg.KeepExtensions))
	if d.OnTemplate != nil {
		d.OnTemplate(ts)
	}
	d.release(k, b, st)
}

func sameFields(a, b []TemplateField) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (d *Decoder) withdraw(ctx *msgCtx, id uint16, st *DecodeStats) {
	k := tkey{exporter: ctx.exporter.Addr(), version: ctx.version, id: id, domain: ctx.domain}
	t, ok := d.templates[k]
	if !ok {
		return
	}
	d.remove(k)
	st.Withdrawn++
	d.notifyWithdrawn(t.set, ctx.received)
}

func (d *Decoder) withdrawAll(ctx *msgCtx, options bool, st *DecodeStats) {
	for k, t := range d.templates {
		if k.exporter == ctx.exporter.Addr() && k.version == ctx.version && k.domain == ctx.domain && t.set.Options == options {
			d.remove(k)
			st.Withdrawn++
			d.notifyWithdrawn(t.set, ctx.received)
		}
	}
}

func (d *Decoder) notifyWithdrawn(ts TemplateSet, received int64) {
	if d.OnTemplate == nil {
		return
	}
	ts.Fields = nil
	ts.Withdrawn = true
	ts.Learned = time.Unix(0, received)
	d.OnTemplate(ts)
}

// dataSet decodes a data set, or queues it when its template is unknown.
func (d *Decoder) dataSet(ctx *msgCtx, id uint16, body []byte, off int, b *core.Batch, st *DecodeStats) error {
	t, ok := d.templates[tkey{exporter: ctx.exporter.Addr(), version: ctx.version, id: id, domain: ctx.domain}]
	if !ok {
		d.enqueue(ctx, id, body, st)
		return nil
	}
	return d.decodeRecords(ctx, t, body, off, b, st)
}

func (d *Decoder) enqueue(ctx *msgCtx, id uint16, body []byte, st *DecodeStats) {
	addr := ctx.exporter.Addr()
	q := d.pending[addr]
	if d.pendingBytes+len(body) > d.cfg.PendingMaxBytes {
		// Every queue together is full: this set is dropped, so that a
		// flood of exporters cannot push out the data of the others.
		st.DroppedQueued++
		return
	}
	if len(q) >= d.cfg.PendingMaxPerExporter {
		drop := len(q) - d.cfg.PendingMaxPerExporter + 1
		for _, p := range q[:drop] {
			d.pendingBytes -= len(p.data)
		}
		n := copy(q, q[drop:])
		clear(q[n:])
		q = q[:n]
		st.DroppedQueued += drop
		d.npending -= drop
	}
	c := *ctx
	c.sampler, c.samplerOK = nil, false
	queued := ctx.received
	if queued == 0 {
		queued = time.Now().UnixNano()
	}
	q = append(q, pendingSet{ctx: c, setID: id, data: append([]byte(nil), body...), queued: queued})
	d.pending[addr] = q
	d.npending++
	d.pendingBytes += len(body)
	st.Queued++
}

// release decodes the queued data sets that template k unlocks.
func (d *Decoder) release(k tkey, b *core.Batch, st *DecodeStats) {
	q, ok := d.pending[k.exporter]
	if !ok {
		return
	}
	t := d.templates[k]
	keep := q[:0]
	var matched []pendingSet
	for _, p := range q {
		if p.setID == k.id && p.ctx.version == k.version && p.ctx.domain == k.domain {
			matched = append(matched, p)
			continue
		}
		keep = append(keep, p)
	}
	if len(matched) == 0 {
		return
	}
	clear(q[len(keep):])
	if len(keep) == 0 {
		delete(d.pending, k.exporter)
	} else {
		d.pending[k.exporter] = keep
	}
	d.npending -= len(matched)
	for i := range matched {
		d.pendingBytes -= len(matched[i].data)
		p := &matched[i]
		st.Released++
		// A queued set that turns out malformed is dropped; the records it
		// held in full are kept.
		_ = d.decodeRecords(&p.ctx, t, p.data, 0, b, st)
	}
}

func (d *Decoder) samplerFor(ctx *msgCtx, create bool) *samplerState {
	if ctx.samplerOK && (ctx.sampler != nil || !create) {
		return ctx.sampler
	}
	k := skey{exporter: ctx.exporter.Addr(), version: ctx.version, domain: ctx.domain}
	s := d.samplers[k]
	if s == nil && create {
		s = &samplerState{}
		d.samplers[k] = s
	}
	ctx.sampler, ctx.samplerOK = s, true
	return s
}
