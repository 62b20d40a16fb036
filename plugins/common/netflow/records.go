package netflow

import (
	"fmt"
	"net/netip"

	"github.com/flowline/flowline/core"
)

// recState holds the values of a record that are resolved after all of its
// fields were read.
type recState struct {
	relStart, relEnd       uint32
	hasRelStart, hasRelEnd bool
	sysInit                uint64
	hasSysInit             bool
	pktInterval, pktSpace  uint64
}

// decodeRecords decodes the records of one data set body with template t.
// Trailing bytes too short for a record are padding.
func (d *Decoder) decodeRecords(ctx *msgCtx, t *template, body []byte, setOff int, b *core.Batch, st *DecodeStats) error {
	if t.minLen == 0 {
		return nil // a template of zero-length fields carries nothing
	}
	options := t.set.Options
	off := 0
	for len(body)-off >= t.minLen {
		if t.variable && off > 0 && len(body)-off < 4 && allZero(body[off:]) {
			return nil // padding after variable-length records
		}
		var r *core.Record
		if options && !d.cfg.EmitOptions {
			d.optRec = core.Record{}
			r = &d.optRec
		} else {
			r = b.AppendRecord()
		}
		n, ok := d.fill(ctx, t, body[off:], r, b)
		if !ok {
			if r != &d.optRec {
				b.Records = b.Records[:len(b.Records)-1]
			}
			return fmt.Errorf("%s from %s: data set %d at offset %d: record at offset %d: variable-length field runs past the set: %w", ctx.name(), ctx.exporter, t.set.ID, setOff, setOff+4+off, ErrMalformed)
		}
		off += n
		if options {
			st.OptionsRecords++
			d.applyOptions(ctx, r)
		} else {
			st.Records++
		}
	}
	return nil
}

// fill decodes one record from rec into r. It returns the bytes consumed and
// false when a variable-length field runs past rec.
func (d *Decoder) fill(ctx *msgCtx, t *template, rec []byte, r *core.Record, b *core.Batch) (int, bool) {
	r.Exporter = ctx.exporter.Addr()
	r.ExporterPort = ctx.exporter.Port()
	r.Version = ctx.version
	r.Domain = ctx.domain
	r.TemplateID = t.set.ID
	r.Received = ctx.received
	present := core.FieldExporter
	if t.set.Options {
		r.Flags = core.FlagOptions
	} else {
		r.Flags = 0
		r.Flows = 1
	}
	var rs recState
	var v []byte
	off := 0
	if !t.variable {
		rec = rec[:t.recLen]
	}
	for i := range t.ops {
		o := &t.ops[i]
		if o.length == varLen {
			if off >= len(rec) {
				return 0, false
			}
			l := int(rec[off])
			off++
			if l == 255 {
				if off+2 > len(rec) {
					return 0, false
				}
				l = int(be16(rec[off:]))
				off += 2
			}
			if off+l > len(rec) {
				return 0, false
			}
			v = rec[off : off+l]
			off += l
		} else if t.variable {
			l := int(o.length)
			if off+l > len(rec) {
				return 0, false
			}
			v = rec[off : off+l]
			off += l
		} else {
			v = rec[o.off : int(o.off)+int(o.length)]
		}
		switch o.kind {
		case kSkip:
		case kExt:
			if d.cfg.KeepExtensions {
				start := len(b.Arena)
				b.Arena = append(b.Arena, v...)
				r.Ext = append(r.Ext, core.Extension{Enterprise: o.ent, Type: o.typ, Value: b.Arena[start:len(b.Arena):len(b.Arena)]})
			}
		case kBytes:
			r.Bytes = readUint(v)
			present |= core.FieldBytes
		case kPackets:
			r.Packets = readUint(v)
			present |= core.FieldPackets
		case kFlows:
			r.Flows = readUint(v)
			present |= core.FieldFlows
		case kProto:
			r.Proto = v[0]
			present |= core.FieldProto
		case kTOS:
			r.TOS = v[0]
			present |= core.FieldTOS
		case kTCPFlags:
			r.TCPFlags = v[len(v)-1]
			present |= core.FieldTCPFlags
		case kSrcPort:
			r.SrcPort = uint16(readUint(v))
			present |= core.FieldSrcPort
		case kDstPort:
			r.DstPort = uint16(readUint(v))
			present |= core.FieldDstPort
		case kSrcV4:
			r.SrcAddr = netip.AddrFrom4([4]byte(v))
			present |= core.FieldSrcAddr
		case kDstV4:
			r.DstAddr = netip.AddrFrom4([4]byte(v))
			present |= core.FieldDstAddr
		case kSrcV6:
			if a := netip.AddrFrom16([16]byte(v)); present&core.FieldSrcAddr == 0 || !a.IsUnspecified() {
				r.SrcAddr = a
				present |= core.FieldSrcAddr
			}
		case kDstV6:
			if a := netip.AddrFrom16([16]byte(v)); present&core.FieldDstAddr == 0 || !a.IsUnspecified() {
				r.DstAddr = a
				present |= core.FieldDstAddr
			}
		case kSrcMask:
			if present&core.FieldSrcMask == 0 || v[0] != 0 {
				r.SrcMask = v[0]
				present |= core.FieldSrcMask
			}
		case kDstMask:
			if present&core.FieldDstMask == 0 || v[0] != 0 {
				r.DstMask = v[0]
				present |= core.FieldDstMask
			}
		case kInIf:
			r.InIface = uint32(readUint(v))
			present |= core.FieldInIface
		case kOutIf:
			r.OutIface = uint32(readUint(v))
			present |= core.FieldOutIface
		case kNextHop4:
			if a := netip.AddrFrom4([4]byte(v)); present&core.FieldNextHop == 0 || !a.IsUnspecified() {
				r.NextHop = a
				present |= core.FieldNextHop
			}
		case kNextHop6:
			if a := netip.AddrFrom16([16]byte(v)); present&core.FieldNextHop == 0 || !a.IsUnspecified() {
				r.NextHop = a
				present |= core.FieldNextHop
			}
		case kSrcAS:
			r.SrcAS = uint32(readUint(v))
			present |= core.FieldSrcAS
		case kDstAS:
			r.DstAS = uint32(readUint(v))
			present |= core.FieldDstAS
		case kRelStart:
			rs.relStart, rs.hasRelStart = uint32(readUint(v)), true
		case kRelEnd:
			rs.relEnd, rs.hasRelEnd = uint32(readUint(v)), true
		case kSampInterval:
			if x := uint32(readUint(v)); x != 0 {
				r.SamplingRate = x
				present |= core.FieldSamplingRate
			}
		case kSamplerID:
			r.SamplerID = uint32(readUint(v))
			present |= core.FieldSamplerID
		case kSrcMAC:
			r.SrcMAC = [6]byte(v)
			present |= core.FieldSrcMAC
		case kDstMAC:
			r.DstMAC = [6]byte(v)
			present |= core.FieldDstMAC
		case kVLAN:
			r.VLAN = uint16(readUint(v))
			present |= core.FieldVLAN
		case kDirection:
			r.Direction = v[0]
			present |= core.FieldDirection
		case kStartSec:
			r.Start = int64(readUint(v)) * 1e9
			present |= core.FieldStart
		case kEndSec:
			r.End = int64(readUint(v)) * 1e9
			present |= core.FieldEnd
		case kStartMs:
			r.Start = int64(readUint(v)) * 1e6
			present |= core.FieldStart
		case kEndMs:
			r.End = int64(readUint(v)) * 1e6
			present |= core.FieldEnd
		case kStartNTP:
			r.Start = ntpToUnixNano(readUint(v))
			present |= core.FieldStart
		case kEndNTP:
			r.End = ntpToUnixNano(readUint(v))
			present |= core.FieldEnd
		case kSysInit:
			rs.sysInit, rs.hasSysInit = readUint(v), true
		case kPktInterval:
			rs.pktInterval = readUint(v)
		case kPktSpace:
			rs.pktSpace = readUint(v)
		}
	}
	if !t.variable {
		off = t.recLen
	}
	if t.post {
		present = d.post(ctx, r, &rs, present)
	}
	if present&core.FieldSamplingRate == 0 && !t.set.Options {
		if s := d.samplerFor(ctx, false); s != nil {
			rate := s.defaultRate
			if present&core.FieldSamplerID != 0 {
				if x, ok := s.rates[r.SamplerID]; ok {
					rate = x
				}
			}
			if rate != 0 {
				r.SamplingRate = rate
				present |= core.FieldSamplingRate
			}
		}
	}
	r.Present = present
	return off, true
}

// post resolves uptime-relative times and the 305/306 sampling rate.
func (d *Decoder) post(ctx *msgCtx, r *core.Record, rs *recState, present core.Field) core.Field {
	if rs.hasRelStart || rs.hasRelEnd {
		if ctx.version == 9 {
			export := int64(ctx.exportSecs) * 1e9
			if rs.hasRelStart && present&core.FieldStart == 0 {
				r.Start = export - int64(int32(ctx.sysUptime-rs.relStart))*1e6
				present |= core.FieldStart
			}
			if rs.hasRelEnd && present&core.FieldEnd == 0 {
				r.End = export - int64(int32(ctx.sysUptime-rs.relEnd))*1e6
				present |= core.FieldEnd
			}
		} else {
			init, ok := rs.sysInit, rs.hasSysInit
			if !ok && r.Flags&core.FlagOptions == 0 {
				if s := d.samplerFor(ctx, false); s != nil && s.sysInitMs != 0 {
					init, ok = s.sysInitMs, true
				}
			}
			if ok {
				if rs.hasRelStart && present&core.FieldStart == 0 {
					r.Start = int64(init+uint64(rs.relStart)) * 1e6
					present |= core.FieldStart
				}
				if rs.hasRelEnd && present&core.FieldEnd == 0 {
					r.End = int64(init+uint64(rs.relEnd)) * 1e6
					present |= core.FieldEnd
				}
			}
		}
	}
	if rs.pktInterval != 0 && present&core.FieldSamplingRate == 0 {
		if rate := (rs.pktInterval + rs.pktSpace) / rs.pktInterval; rate > 0 && rate <= 0xFFFFFFFF {
			r.SamplingRate = uint32(rate)
			present |= core.FieldSamplingRate
		}
	}
	if rs.hasSysInit && r.Flags&core.FlagOptions != 0 {
		s := d.samplerFor(ctx, true)
		s.sysInitMs = rs.sysInit
	}
	return present
}

// applyOptions feeds an options data record into the sampler table of its
// exporter and domain.
func (d *Decoder) applyOptions(ctx *msgCtx, r *core.Record) {
	if !r.Has(core.FieldSamplingRate) {
		return
	}
	s := d.samplerFor(ctx, true)
	if r.Has(core.FieldSamplerID) {
		if s.rates == nil {
			s.rates = make(map[uint32]uint32)
		}
		s.rates[r.SamplerID] = r.SamplingRate
		return
	}
	s.defaultRate = r.SamplingRate
}
