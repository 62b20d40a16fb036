package pmacct

import (
	"bytes"
	"errors"
	"net/netip"
	"time"

	"github.com/flowline/flowline/core"
)

// Event is the event_type of one pmacct JSON object.
type Event uint8

// The event types Decoder knows.
const (
	// EventPurge is a record ("purge": an aggregate written at a purge).
	EventPurge Event = iota
	// EventMarker is a purge_init or purge_close marker (amqp_markers).
	EventMarker
)

// Decoding errors, one per kind, so that a consumer can count and log each
// kind once.
var (
	ErrNotJSON      = errors.New("not a JSON object")
	ErrWrongType    = errors.New("a value has the wrong type")
	ErrBadValue     = errors.New("a value cannot be read")
	ErrUnknownEvent = errors.New("unknown event_type")
)

// Decoder reads the JSON lines Encoder writes (and nfacctd's print and amqp
// plugins publish) back into records. Keys Flowline has no field for are
// skipped; a known key with a value of the wrong type is an error. It
// allocates nothing per record.
type Decoder struct {
	// Loc is the zone the stamps were printed in (time.Local unless the
	// writer had timestamps_utc). Nil means time.Local.
	Loc *time.Location
}

// Decode reads one JSON object into r (which it resets first) and says which
// event it was; only EventPurge fills r.
func (d *Decoder) Decode(line []byte, r *core.Record) (Event, error) {
	*r = core.Record{}
	p := parser{b: line}
	p.space()
	if !p.eat('{') {
		return 0, ErrNotJSON
	}
	ev := EventPurge
	p.space()
	if p.eat('}') {
		return 0, ErrNotJSON // an empty object is not a pmacct event
	}
	for {
		p.space()
		key, ok := p.str()
		if !ok {
			return 0, ErrNotJSON
		}
		p.space()
		if !p.eat(':') {
			return 0, ErrNotJSON
		}
		p.space()
		if err := d.value(&p, key, r, &ev); err != nil {
			return 0, err
		}
		p.space()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			break
		}
		return 0, ErrNotJSON
	}
	p.space()
	if p.i != len(p.b) {
		return 0, ErrNotJSON
	}
	return ev, nil
}

// value reads the value of key into r.
func (d *Decoder) value(p *parser, key []byte, r *core.Record, ev *Event) error {
	switch string(key) {
	case "event_type":
		s, ok := p.str()
		if !ok {
			return p.typeErr()
		}
		switch string(s) {
		case "purge":
			*ev = EventPurge
		case "purge_init", "purge_close":
			*ev = EventMarker
		default:
			return ErrUnknownEvent
		}
		return nil
	case "mac_src":
		return d.mac(p, &r.SrcMAC, r, core.FieldSrcMAC)
	case "mac_dst":
		return d.mac(p, &r.DstMAC, r, core.FieldDstMAC)
	case "vlan":
		v, err := p.uint(0xffff)
		r.VLAN = uint16(v)
		return set(r, core.FieldVLAN, err)
	case "as_src":
		v, err := p.uint(0xffffffff)
		r.SrcAS = uint32(v)
		return set(r, core.FieldSrcAS, err)
	case "as_dst":
		v, err := p.uint(0xffffffff)
		r.DstAS = uint32(v)
		return set(r, core.FieldDstAS, err)
	case "peer_ip_src":
		return d.addr(p, &r.Exporter, r, core.FieldExporter)
	case "peer_ip_dst":
		return d.addr(p, &r.NextHop, r, core.FieldNextHop)
	case "iface_in":
		v, err := p.uint(0xffffffff)
		r.InIface = uint32(v)
		return set(r, core.FieldInIface, err)
	case "iface_out":
		v, err := p.uint(0xffffffff)
		r.OutIface = uint32(v)
		return set(r, core.FieldOutIface, err)
	case "ip_src":
		return d.addr(p, &r.SrcAddr, r, core.FieldSrcAddr)
	case "net_src":
		return d.addr(p, &r.SrcAddr, r, core.FieldSrcNet)
	case "ip_dst":
		return d.addr(p, &r.DstAddr, r, core.FieldDstAddr)
	case "net_dst":
		return d.addr(p, &r.DstAddr, r, core.FieldDstNet)
	case "mask_src":
		v, err := p.uint(128)
		r.SrcMask = uint8(v)
		return set(r, core.FieldSrcMask, err)
	case "mask_dst":
		v, err := p.uint(128)
		r.DstMask = uint8(v)
		return set(r, core.FieldDstMask, err)
	case "port_src":
		v, err := p.uint(0xffff)
		r.SrcPort = uint16(v)
		return set(r, core.FieldSrcPort, err)
	case "port_dst":
		v, err := p.uint(0xffff)
		r.DstPort = uint16(v)
		return set(r, core.FieldDstPort, err)
	case "tcp_flags":
		// nfacctd prints the flags as a quoted decimal string.
		v, err := p.quotedUint(0xff)
		r.TCPFlags = uint8(v)
		return set(r, core.FieldTCPFlags, err)
	case "ip_proto":
		return d.proto(p, r)
	case "tos":
		v, err := p.uint(0xff)
		r.TOS = uint8(v)
		return set(r, core.FieldTOS, err)
	case "sampling_rate":
		v, err := p.uint(0xffffffff)
		r.SamplingRate = uint32(v)
		return set(r, core.FieldSamplingRate, err)
	case "timestamp_start":
		return d.stamp(p, &r.Start, r, core.FieldStart)
	case "timestamp_end":
		return d.stamp(p, &r.End, r, core.FieldEnd)
	case "timestamp_arrival":
		return d.stamp(p, &r.Received, r, 0)
	case "stamp_inserted":
		return d.stamp(p, &r.StampInserted, r, core.FieldStamps)
	case "stamp_updated":
		return d.stamp(p, &r.StampUpdated, r, core.FieldStamps)
	case "flows":
		v, err := p.uint(1<<64 - 1)
		r.Flows = v
		return set(r, core.FieldFlows, err)
	case "packets":
		v, err := p.uint(1<<64 - 1)
		r.Packets = v
		return set(r, core.FieldPackets, err)
	case "bytes":
		v, err := p.uint(1<<64 - 1)
		r.Bytes = v
		return set(r, core.FieldBytes, err)
	}
	return p.skip()
}

func set(r *core.Record, f core.Field, err error) error {
	if err == nil {
		r.Present |= f
	}
	return err
}

func (d *Decoder) mac(p *parser, m *[6]byte, r *core.Record, f core.Field) error {
	s, ok := p.str()
	if !ok {
		return p.typeErr()
	}
	if len(s) != 17 {
		return ErrBadValue
	}
	for i := range m {
		hi, ok1 := unhex(s[3*i])
		lo, ok2 := unhex(s[3*i+1])
		if !ok1 || !ok2 || (i < 5 && s[3*i+2] != ':') {
			return ErrBadValue
		}
		m[i] = hi<<4 | lo
	}
	r.Present |= f
	return nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (d *Decoder) addr(p *parser, a *netip.Addr, r *core.Record, f core.Field) error {
	s, ok := p.str()
	if !ok {
		return p.typeErr()
	}
	v, err := parseAddr(s)
	if err != nil {
		return ErrBadValue
	}
	*a = v
	r.Present |= f
	return nil
}

// parseAddr parses an IPv4 or IPv6 address without allocating for IPv4
// (netip.ParseAddr takes a string; the conversion of a short IPv6 literal
// is the only allocation).
func parseAddr(s []byte) (netip.Addr, error) {
	if bytes.IndexByte(s, ':') >= 0 {
		return netip.ParseAddr(string(s))
	}
	var v4 [4]byte
	n, part, digits := 0, 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			part = part*10 + int(c-'0')
			digits++
			if part > 255 || digits > 3 {
				return netip.Addr{}, ErrBadValue
			}
		case c == '.':
			if digits == 0 || n == 3 {
				return netip.Addr{}, ErrBadValue
			}
			v4[n] = byte(part)
			n, part, digits = n+1, 0, 0
		default:
			return netip.Addr{}, ErrBadValue
		}
	}
	if n != 3 || digits == 0 {
		return netip.Addr{}, ErrBadValue
	}
	v4[3] = byte(part)
	return netip.AddrFrom4(v4), nil
}

// protoByName is ProtoNames reversed.
var protoByName = func() map[string]uint8 {
	m := make(map[string]uint8)
	for i, n := range ProtoNames {
		if n != "" {
			m[n] = uint8(i)
		}
	}
	return m
}()

func (d *Decoder) proto(p *parser, r *core.Record) error {
	if p.peek() != '"' {
		v, err := p.uint(0xff)
		r.Proto = uint8(v)
		return set(r, core.FieldProto, err)
	}
	s, ok := p.str()
	if !ok {
		return ErrNotJSON
	}
	if v, ok := protoByName[string(s)]; ok {
		r.Proto = v
		r.Present |= core.FieldProto
		return nil
	}
	v, ok := atou(s, 0xff)
	if !ok {
		return ErrBadValue
	}
	r.Proto = uint8(v)
	r.Present |= core.FieldProto
	return nil
}

// stamp reads "YYYY-MM-DD HH:MM:SS" with an optional ".uuuuuu" in d.Loc.
func (d *Decoder) stamp(p *parser, ns *int64, r *core.Record, f core.Field) error {
	s, ok := p.str()
	if !ok {
		return p.typeErr()
	}
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return ErrBadValue
	}
	num := func(b []byte) int {
		v, ok := atou(b, 9999)
		if !ok {
			return -1
		}
		return int(v)
	}
	year, mon, day := num(s[0:4]), num(s[5:7]), num(s[8:10])
	hh, mm, ss := num(s[11:13]), num(s[14:16]), num(s[17:19])
	if year < 0 || mon < 1 || mon > 12 || day < 1 || day > 31 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 {
		return ErrBadValue
	}
	frac := 0
	if len(s) > 19 {
		if s[19] != '.' || len(s) == 20 || len(s) > 29 {
			return ErrBadValue
		}
		digits := s[20:]
		v, ok := atou(digits, 999999999)
		if !ok {
			return ErrBadValue
		}
		frac = int(v)
		for i := len(digits); i < 9; i++ {
			frac *= 10
		}
	}
	loc := d.Loc
	if loc == nil {
		loc = time.Local
	}
	*ns = time.Date(year, time.Month(mon), day, hh, mm, ss, frac, loc).UnixNano()
	r.Present |= f
	return nil
}

// atou parses a decimal number no larger than max.
func atou(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (max-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parser walks one flat JSON object.
type parser struct {
	b   []byte
	i   int
	esc bool // the last string read had escapes
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string and returns its raw bytes (pmacct's keys and values
// need no escapes; a string with escapes is returned raw with p.esc set, so
// that it never matches a key or parses as a value).
func (p *parser) str() ([]byte, bool) {
	p.esc = false
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	// The common case: no escape before the closing quote.
	if j := bytes.IndexByte(p.b[start:], '"'); j >= 0 && bytes.IndexByte(p.b[start:start+j], '\\') < 0 {
		p.i = start + j + 1
		return p.b[start : start+j], true
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '\\':
			p.esc = true
			p.i += 2
			continue
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// typeErr reports a value that is not what the key needs: a wrong type when
// the value is valid JSON, not JSON otherwise.
func (p *parser) typeErr() error {
	if p.skip() != nil {
		return ErrNotJSON
	}
	return ErrWrongType
}

// uint reads a JSON number that must be an unsigned integer <= max.
func (p *parser) uint(max uint64) (uint64, error) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	if p.i == start {
		p.i = start
		return 0, p.typeErr()
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, ErrWrongType
	}
	v, ok := atou(p.b[start:p.i], max)
	if !ok {
		return 0, ErrBadValue
	}
	return v, nil
}

// quotedUint reads an unsigned integer given as a number or a decimal string.
func (p *parser) quotedUint(max uint64) (uint64, error) {
	if p.peek() != '"' {
		return p.uint(max)
	}
	s, ok := p.str()
	if !ok {
		return 0, ErrNotJSON
	}
	v, ok := atou(s, max)
	if !ok {
		return 0, ErrBadValue
	}
	return v, nil
}

// skip passes over any JSON value (nested ones included), bounded by the
// input's length.
func (p *parser) skip() error {
	p.space()
	switch c := p.peek(); {
	case c == '"':
		if _, ok := p.str(); !ok {
			return ErrNotJSON
		}
		return nil
	case c == '{' || c == '[':
		depth := 0
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					p.i++
					return nil
				}
			case '"':
				if _, ok := p.str(); !ok {
					return ErrNotJSON
				}
				continue
			}
			p.i++
		}
		return ErrNotJSON
	case c == '-' || (c >= '0' && c <= '9'):
		p.i++
		for p.i < len(p.b) {
			c := p.b[p.i]
			if (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
				p.i++
				continue
			}
			break
		}
		return nil
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
			p.i += len(lit)
			return nil
		}
	}
	return ErrNotJSON
}
