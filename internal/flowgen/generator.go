package flowgen

import (
	"encoding/binary"
	"time"
)

// PacketKind tells what a datagram from Generator.Next carries.
type PacketKind uint8

const (
	// PacketNone means there is nothing more to send.
	PacketNone PacketKind = iota
	// PacketData is a datagram of flow records.
	PacketData
	// PacketTemplate is a datagram of templates and, when sampling is
	// announced, the sampling options template and options data record.
	PacketTemplate
)

// String returns "none", "data" or "template".
func (k PacketKind) String() string {
	switch k {
	case PacketData:
		return "data"
	case PacketTemplate:
		return "template"
	}
	return "none"
}

// PacketInfo describes the datagram last returned by Generator.Next.
type PacketInfo struct {
	// Kind is what the datagram carries.
	Kind PacketKind
	// Exporter is the index in Config.Exporters of the address to send it
	// from (0 when there are none).
	Exporter int
	// SourceID is the v9 source id, IPFIX observation domain or v5 engine id.
	SourceID uint32
	// Flows is the number of flow records in it.
	Flows int
	// FlowPackets and FlowBytes are the sums of its flow records' counters.
	FlowPackets, FlowBytes uint64
}

// Template ids used for v9 and IPFIX.
const (
	tmplV4      = 256
	tmplV6      = 257
	tmplOptions = 258
)

// field is an information element id and length in a template.
type field struct{ id, length uint16 }

// The data templates. The record encoders below write the fields in exactly
// this order; the sampler id (v9 48, IPFIX selectorId 302) is appended when
// sampling is announced.
var (
	v9FieldsV4 = []field{{8, 4}, {12, 4}, {7, 2}, {11, 2}, {4, 1}, {5, 1}, {6, 1}, {10, 4}, {14, 4}, {16, 4}, {17, 4}, {9, 1}, {13, 1}, {15, 4}, {2, 8}, {1, 8}, {22, 4}, {21, 4}}
	v9FieldsV6 = []field{{27, 16}, {28, 16}, {7, 2}, {11, 2}, {4, 1}, {5, 1}, {6, 1}, {10, 4}, {14, 4}, {16, 4}, {17, 4}, {29, 1}, {30, 1}, {62, 16}, {2, 8}, {1, 8}, {22, 4}, {21, 4}}
	ipfixV4    = []field{{8, 4}, {12, 4}, {7, 2}, {11, 2}, {4, 1}, {5, 1}, {6, 1}, {10, 4}, {14, 4}, {16, 4}, {17, 4}, {9, 1}, {13, 1}, {15, 4}, {2, 8}, {1, 8}, {152, 8}, {153, 8}}
	ipfixV6    = []field{{27, 16}, {28, 16}, {7, 2}, {11, 2}, {4, 1}, {5, 1}, {6, 1}, {10, 4}, {14, 4}, {16, 4}, {17, 4}, {29, 1}, {30, 1}, {62, 16}, {2, 8}, {1, 8}, {152, 8}, {153, 8}}
	v9Sampler  = field{48, 1}
	ipfixSel   = field{302, 2}
	// v9 options: scope System (1) carrying the source id; then sampler id,
	// sampling interval and sampling algorithm (2 = random).
	v9OptScope  = []field{{1, 4}}
	v9OptFields = []field{{48, 1}, {34, 4}, {35, 1}}
	// IPFIX options: scope selectorId; then samplingPacketInterval (1),
	// samplingPacketSpace (N-1) and the older samplingInterval (N).
	ipfixOptScope  = []field{{302, 2}}
	ipfixOptFields = []field{{305, 4}, {306, 4}, {34, 4}}
)

// maxRecordLen is the largest data record: IPFIX IPv6 with a selector id.
const maxRecordLen = 16 + 16 + 2 + 2 + 1 + 1 + 1 + 4 + 4 + 4 + 4 + 1 + 1 + 16 + 8 + 8 + 8 + 8 + 2

// stream is the state of one (exporter, source id) pair.
type stream struct {
	exporter     int
	sourceID     uint32
	seq          uint32 // v5: flows, v9: packets, IPFIX: data records sent before
	dataPackets  uint64
	sinceTmpl    int
	templateSent bool
	lastTmpl     time.Time
}

// Generator builds datagrams without sending them. It is not safe for
// concurrent use.
type Generator struct {
	cfg      Config
	streams  []stream
	next     int
	pool     pool
	rng      rng
	boot     time.Time
	sampled  bool
	draining bool
	buf      []byte
	flows    []flow
	last     PacketInfo
	totals   Totals
	produced uint64
	fieldsV4 []field
	fieldsV6 []field
}

// NewGenerator checks cfg and returns a generator for it.
func NewGenerator(cfg Config) (*Generator, error) {
	cfg, exps, err := normalize(cfg)
	if err != nil {
		return nil, err
	}
	g := &Generator{
		cfg:     cfg,
		pool:    newPool(cfg.Seed, cfg.HostPool, cfg.IPv6Share, cfg.Distinct),
		rng:     rng{s: uint64(cfg.Seed)},
		sampled: cfg.SamplingRate > 1,
		buf:     make([]byte, 0, maxDatagram),
		flows:   make([]flow, cfg.FlowsPerPacket),
	}
	// The exporter's "boot" is an hour before the start, so that first and
	// last switched stay well after it.
	g.boot = cfg.Clock().Add(-time.Hour)
	nexp := max(len(exps), 1)
	for sid := range cfg.SourceIDs {
		for e := range nexp {
			g.streams = append(g.streams, stream{exporter: e, sourceID: uint32(sid)})
		}
	}
	switch cfg.Version {
	case 9:
		g.fieldsV4, g.fieldsV6 = v9FieldsV4, v9FieldsV6
		if g.sampled {
			g.fieldsV4 = append(append([]field(nil), v9FieldsV4...), v9Sampler)
			g.fieldsV6 = append(append([]field(nil), v9FieldsV6...), v9Sampler)
		}
	case 10:
		g.fieldsV4, g.fieldsV6 = ipfixV4, ipfixV6
		if g.sampled {
			g.fieldsV4 = append(append([]field(nil), ipfixV4...), ipfixSel)
			g.fieldsV6 = append(append([]field(nil), ipfixV6...), ipfixSel)
		}
	}
	return g, nil
}

// Config returns the configuration with defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// Totals returns the totals of every datagram Next has returned so far, as
// if all of them were sent. Run keeps its own totals of the datagrams whose
// write succeeded.
func (g *Generator) Totals() Totals { return g.totals }

// Last describes the datagram last returned by Next.
func (g *Generator) Last() PacketInfo { return g.last }

// Drain ends generation: Next then returns only the templates still owed to
// source ids that have sent data before their first template (TemplateDelay),
// then PacketNone.
func (g *Generator) Drain() { g.draining = true }

// Next returns the next datagram to send: templates (and sampling options)
// when they are due for the next source id, flow records otherwise. It
// returns PacketNone when Config.Flows flows have been produced or after
// Drain, once no template is owed. The returned slice is reused by the next
// call. Next does not allocate.
func (g *Generator) Next() (pkt []byte, kind PacketKind, flows int) {
	now := g.cfg.Clock()
	if g.draining || (g.cfg.Flows > 0 && g.produced >= g.cfg.Flows) {
		if g.cfg.Version != 5 {
			for i := range g.streams {
				s := &g.streams[i]
				if s.dataPackets > 0 && !s.templateSent {
					return g.template(s, now)
				}
			}
		}
		g.last = PacketInfo{}
		return nil, PacketNone, 0
	}
	s := &g.streams[g.next]
	g.next++
	if g.next == len(g.streams) {
		g.next = 0
	}
	if g.cfg.Version != 5 && g.templateDue(s, now) {
		return g.template(s, now)
	}
	n := g.cfg.FlowsPerPacket
	if g.cfg.Flows > 0 && g.cfg.Flows-g.produced < uint64(n) {
		n = int(g.cfg.Flows - g.produced)
	}
	fs := g.flows[:n]
	info := PacketInfo{Kind: PacketData, Exporter: s.exporter, SourceID: s.sourceID, Flows: n}
	for i := range fs {
		g.pool.fill(&g.rng, &fs[i])
		info.FlowPackets += fs[i].packets
		info.FlowBytes += fs[i].bytes
	}
	switch g.cfg.Version {
	case 5:
		g.buf = g.v5Data(g.buf[:0], s, fs, now)
	case 9:
		g.buf = g.v9Data(g.buf[:0], s, fs, now)
	default:
		g.buf = g.ipfixData(g.buf[:0], s, fs, now)
	}
	s.dataPackets++
	s.sinceTmpl++
	g.produced += uint64(n)
	g.last = info
	g.totals.Add(info)
	return g.buf, PacketData, n
}

func (g *Generator) templateDue(s *stream, now time.Time) bool {
	if !s.templateSent {
		return s.dataPackets >= uint64(g.cfg.TemplateDelay)
	}
	if g.cfg.TemplateEvery > 0 && s.sinceTmpl >= g.cfg.TemplateEvery {
		return true
	}
	return g.cfg.TemplateInterval > 0 && now.Sub(s.lastTmpl) >= g.cfg.TemplateInterval
}

func (g *Generator) template(s *stream, now time.Time) ([]byte, PacketKind, int) {
	if g.cfg.Version == 9 {
		g.buf = g.v9Template(g.buf[:0], s, now)
	} else {
		g.buf = g.ipfixTemplate(g.buf[:0], s, now)
	}
	s.templateSent = true
	s.sinceTmpl = 0
	s.lastTmpl = now
	g.last = PacketInfo{Kind: PacketTemplate, Exporter: s.exporter, SourceID: s.sourceID}
	g.totals.Add(g.last)
	return g.buf, PacketTemplate, 0
}

var be = binary.BigEndian

func (g *Generator) uptime(now time.Time) uint32 {
	return uint32(now.Sub(g.boot).Milliseconds())
}

// v5Data encodes a NetFlow v5 packet: a 24-byte header and 48-byte records.
func (g *Generator) v5Data(b []byte, s *stream, fs []flow, now time.Time) []byte {
	up := g.uptime(now)
	b = be.AppendUint16(b, 5)
	b = be.AppendUint16(b, uint16(len(fs)))
	b = be.AppendUint32(b, up)
	b = be.AppendUint32(b, uint32(now.Unix()))
	b = be.AppendUint32(b, uint32(now.Nanosecond()))
	b = be.AppendUint32(b, s.seq)
	b = append(b, 0, byte(s.sourceID)) // engine type, engine id
	var sampling uint16
	if g.sampled {
		sampling = 1<<14 | uint16(g.cfg.SamplingRate) // mode 1: packet interval
	}
	b = be.AppendUint16(b, sampling)
	for i := range fs {
		f := &fs[i]
		b = append(b, f.src[:4]...)
		b = append(b, f.dst[:4]...)
		b = append(b, f.nh[:4]...)
		b = be.AppendUint16(b, uint16(f.inIf))
		b = be.AppendUint16(b, uint16(f.outIf))
		b = be.AppendUint32(b, uint32(f.packets))
		b = be.AppendUint32(b, uint32(f.bytes))
		b = be.AppendUint32(b, up-f.startAgo)
		b = be.AppendUint32(b, up-f.endAgo)
		b = be.AppendUint16(b, f.srcPort)
		b = be.AppendUint16(b, f.dstPort)
		b = append(b, 0, f.flags, f.proto, f.tos)
		b = be.AppendUint16(b, uint16(f.srcAS))
		b = be.AppendUint16(b, uint16(f.dstAS))
		b = append(b, f.srcMask, f.dstMask, 0, 0)
	}
	s.seq += uint32(len(fs))
	return b
}

// appendCommon writes the fields shared by all templates, from the ports to
// the byte counter.
func appendCommon(b []byte, f *flow) []byte {
	b = be.AppendUint16(b, f.srcPort)
	b = be.AppendUint16(b, f.dstPort)
	b = append(b, f.proto, f.tos, f.flags)
	b = be.AppendUint32(b, f.inIf)
	b = be.AppendUint32(b, f.outIf)
	b = be.AppendUint32(b, f.srcAS)
	b = be.AppendUint32(b, f.dstAS)
	return b
}

func appendAddrs(b []byte, f *flow) []byte {
	if f.v6 {
		b = append(b, f.src[:]...)
		b = append(b, f.dst[:]...)
	} else {
		b = append(b, f.src[:4]...)
		b = append(b, f.dst[:4]...)
	}
	b = appendCommon(b, f)
	b = append(b, f.srcMask, f.dstMask)
	if f.v6 {
		b = append(b, f.nh[:]...)
	} else {
		b = append(b, f.nh[:4]...)
	}
	b = be.AppendUint64(b, f.packets)
	b = be.AppendUint64(b, f.bytes)
	return b
}

// countV6 returns how many of fs are IPv6.
func countV6(fs []flow) int {
	n := 0
	for i := range fs {
		if fs[i].v6 {
			n++
		}
	}
	return n
}

// v9Data encodes a NetFlow v9 packet with one data FlowSet per address
// family present, each padded to 4 bytes.
func (g *Generator) v9Data(b []byte, s *stream, fs []flow, now time.Time) []byte {
	up := g.uptime(now)
	b = g.v9Header(b, s, len(fs), now)
	n6 := countV6(fs)
	for _, v6 := range [2]bool{false, true} {
		cnt := len(fs) - n6
		id := uint16(tmplV4)
		if v6 {
			cnt, id = n6, tmplV6
		}
		if cnt == 0 {
			continue
		}
		start := len(b)
		b = be.AppendUint16(b, id)
		b = be.AppendUint16(b, 0) // length, set below
		for i := range fs {
			f := &fs[i]
			if f.v6 != v6 {
				continue
			}
			b = appendAddrs(b, f)
			b = be.AppendUint32(b, up-f.startAgo)
			b = be.AppendUint32(b, up-f.endAgo)
			if g.sampled {
				b = append(b, 1)
			}
		}
		b = pad4(b, start)
	}
	return b
}

func (g *Generator) v9Header(b []byte, s *stream, count int, now time.Time) []byte {
	b = be.AppendUint16(b, 9)
	b = be.AppendUint16(b, uint16(count))
	b = be.AppendUint32(b, g.uptime(now))
	b = be.AppendUint32(b, uint32(now.Unix()))
	b = be.AppendUint32(b, s.seq)
	b = be.AppendUint32(b, s.sourceID)
	s.seq++ // v9 counts export packets
	return b
}

// pad4 pads the set that starts at start to a multiple of 4 bytes and
// writes its length.
func pad4(b []byte, start int) []byte {
	for (len(b)-start)%4 != 0 {
		b = append(b, 0)
	}
	be.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

func appendFields(b []byte, fs []field) []byte {
	for _, f := range fs {
		b = be.AppendUint16(b, f.id)
		b = be.AppendUint16(b, f.length)
	}
	return b
}

// v9Template encodes the data templates and, when sampling is announced,
// the options template and the options data record of the source id.
func (g *Generator) v9Template(b []byte, s *stream, now time.Time) []byte {
	count := 1
	if g.cfg.IPv6Share > 0 {
		count++
	}
	if g.sampled {
		count += 2
	}
	b = g.v9Header(b, s, count, now)
	start := len(b)
	b = be.AppendUint16(b, 0) // template FlowSet
	b = be.AppendUint16(b, 0)
	b = be.AppendUint16(b, tmplV4)
	b = be.AppendUint16(b, uint16(len(g.fieldsV4)))
	b = appendFields(b, g.fieldsV4)
	if g.cfg.IPv6Share > 0 {
		b = be.AppendUint16(b, tmplV6)
		b = be.AppendUint16(b, uint16(len(g.fieldsV6)))
		b = appendFields(b, g.fieldsV6)
	}
	b = pad4(b, start)
	if !g.sampled {
		return b
	}
	start = len(b)
	b = be.AppendUint16(b, 1) // options template FlowSet
	b = be.AppendUint16(b, 0)
	b = be.AppendUint16(b, tmplOptions)
	b = be.AppendUint16(b, uint16(4*len(v9OptScope)))
	b = be.AppendUint16(b, uint16(4*len(v9OptFields)))
	b = appendFields(b, v9OptScope)
	b = appendFields(b, v9OptFields)
	b = pad4(b, start)
	start = len(b)
	b = be.AppendUint16(b, tmplOptions)
	b = be.AppendUint16(b, 0)
	b = be.AppendUint32(b, s.sourceID)
	b = append(b, 1) // sampler id
	b = be.AppendUint32(b, g.cfg.SamplingRate)
	b = append(b, 2) // random sampling
	return pad4(b, start)
}

func (g *Generator) ipfixHeader(b []byte, s *stream, now time.Time) []byte {
	b = be.AppendUint16(b, 10)
	b = be.AppendUint16(b, 0) // length, set by ipfixDone
	b = be.AppendUint32(b, uint32(now.Unix()))
	b = be.AppendUint32(b, s.seq)
	b = be.AppendUint32(b, s.sourceID)
	return b
}

func ipfixDone(b []byte) []byte {
	be.PutUint16(b[2:], uint16(len(b)))
	return b
}

func setLen(b []byte, start int) {
	be.PutUint16(b[start+2:], uint16(len(b)-start))
}

// ipfixData encodes an IPFIX message with one data set per address family
// present. The sequence number counts data records.
func (g *Generator) ipfixData(b []byte, s *stream, fs []flow, now time.Time) []byte {
	b = g.ipfixHeader(b, s, now)
	nowMs := uint64(now.UnixMilli())
	n6 := countV6(fs)
	for _, v6 := range [2]bool{false, true} {
		cnt := len(fs) - n6
		id := uint16(tmplV4)
		if v6 {
			cnt, id = n6, tmplV6
		}
		if cnt == 0 {
			continue
		}
		start := len(b)
		b = be.AppendUint16(b, id)
		b = be.AppendUint16(b, 0)
		for i := range fs {
			f := &fs[i]
			if f.v6 != v6 {
				continue
			}
			b = appendAddrs(b, f)
			b = be.AppendUint64(b, nowMs-uint64(f.startAgo))
			b = be.AppendUint64(b, nowMs-uint64(f.endAgo))
			if g.sampled {
				b = be.AppendUint16(b, 1)
			}
		}
		setLen(b, start)
	}
	s.seq += uint32(len(fs))
	return ipfixDone(b)
}

// ipfixTemplate encodes the data templates and, when sampling is announced,
// the options template and options data record. The options data record
// counts in the sequence number, as RFC 7011 counts all data records.
func (g *Generator) ipfixTemplate(b []byte, s *stream, now time.Time) []byte {
	b = g.ipfixHeader(b, s, now)
	start := len(b)
	b = be.AppendUint16(b, 2) // template set
	b = be.AppendUint16(b, 0)
	b = be.AppendUint16(b, tmplV4)
	b = be.AppendUint16(b, uint16(len(g.fieldsV4)))
	b = appendFields(b, g.fieldsV4)
	if g.cfg.IPv6Share > 0 {
		b = be.AppendUint16(b, tmplV6)
		b = be.AppendUint16(b, uint16(len(g.fieldsV6)))
		b = appendFields(b, g.fieldsV6)
	}
	setLen(b, start)
	if g.sampled {
		start = len(b)
		b = be.AppendUint16(b, 3) // options template set
		b = be.AppendUint16(b, 0)
		b = be.AppendUint16(b, tmplOptions)
		b = be.AppendUint16(b, uint16(len(ipfixOptScope)+len(ipfixOptFields)))
		b = be.AppendUint16(b, uint16(len(ipfixOptScope)))
		b = appendFields(b, ipfixOptScope)
		b = appendFields(b, ipfixOptFields)
		setLen(b, start)
		start = len(b)
		b = be.AppendUint16(b, tmplOptions)
		b = be.AppendUint16(b, 0)
		b = be.AppendUint16(b, 1) // selectorId
		b = be.AppendUint32(b, 1) // samplingPacketInterval
		b = be.AppendUint32(b, g.cfg.SamplingRate-1)
		b = be.AppendUint32(b, g.cfg.SamplingRate)
		setLen(b, start)
		s.seq++
	}
	return ipfixDone(b)
}
