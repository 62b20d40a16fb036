// Package envelope is the wire format between the replicator (outputs.tee)
// and the collectors (inputs.replica), and between collectors that share
// templates (processors.templates share_to).
//
// An envelope is one UDP datagram: a fixed header followed by a payload.
// All integers are big endian.
//
//	offset size field
//	0      2    magic 0xF10E (never a NetFlow/IPFIX version number)
//	2      1    envelope version (1)
//	3      1    type: 1 packet, 2 templates, 3 probe, 4 probe reply;
//	            high bit (FlagAuth): the last TagLen bytes are an HMAC tag
//	4      1    exporter address family: 4, 6, or 0 (no exporter)
//	5      1    header length in bytes (16, 20 or 32): the payload starts there
//	6      2    exporter UDP source port
//	8      8    receive time at the replicator, Unix nanoseconds
//	16     0/4/16 exporter address
//
// Type 1 (packet) carries one export datagram exactly as the exporter sent
// it; the collector treats it as received from the exporter's address and
// port at the carried time. Type 2 (templates) carries templates in the
// versioned template file format of netflow.MarshalTemplates; each template
// names its exporter, so the header carries none. Types 3 and 4 are the
// liveness probe of the tee and the collector's answer; their payload is
// opaque and echoed.
//
// With a shared secret the type byte has FlagAuth set and the datagram ends
// with a tag over everything before it (see auth.go); the payload stops
// before the tag.
//
// A datagram that does not start with the magic is not an envelope; the
// replica input treats a plain NetFlow v5/v9/IPFIX datagram as coming from
// the datagram's source, and counts and skips anything else.
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Magic starts every envelope. Its first byte (0xF1) can never start a
// NetFlow or IPFIX datagram, whose first two bytes are the version (5, 9, 10).
const Magic uint16 = 0xF10E

// Version is the envelope format version this build writes and reads.
const Version = 1

// Type is the kind of payload an envelope carries.
type Type uint8

// The envelope types.
const (
	TypePacket     Type = 1
	TypeTemplates  Type = 2
	TypeProbe      Type = 3
	TypeProbeReply Type = 4
)

// String names the type.
func (t Type) String() string {
	switch t {
	case TypePacket:
		return "packet"
	case TypeTemplates:
		return "templates"
	case TypeProbe:
		return "probe"
	case TypeProbeReply:
		return "probe-reply"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// baseLen is the header length without the exporter address.
const baseLen = 16

// MaxHeaderLen is the longest header (IPv6 exporter).
const MaxHeaderLen = baseLen + 16

// ErrNotEnvelope is returned by Parse for a datagram without the magic.
var ErrNotEnvelope = errors.New("envelope: not an envelope")

// ErrMalformed is wrapped by the errors Parse returns for a datagram that has
// the magic but a bad header (unknown version or type, short header).
var ErrMalformed = errors.New("envelope: malformed")

// Header is a parsed envelope header.
type Header struct {
	Type Type
	// Exporter is the exporter's address and port; invalid when the
	// envelope carries none (templates, probes).
	Exporter netip.AddrPort
	// Received is when the replicator received the datagram, Unix nanoseconds.
	Received int64
	// Authenticated says the envelope carries a tag (FlagAuth); whether the
	// tag is right is Signer.Verify's business.
	Authenticated bool
}

// HeaderLen is the header length for an exporter address.
func HeaderLen(exporter netip.Addr) int {
	switch {
	case !exporter.IsValid():
		return baseLen
	case exporter.Is4() || exporter.Is4In6():
		return baseLen + 4
	default:
		return baseLen + 16
	}
}

// AppendHeader appends an envelope header to dst. An IPv4-mapped IPv6
// exporter is written as IPv4. It does not allocate when dst has room.
func AppendHeader(dst []byte, t Type, exporter netip.AddrPort, received int64) []byte {
	a := exporter.Addr()
	fam := byte(0)
	switch {
	case !a.IsValid():
	case a.Is4() || a.Is4In6():
		fam = 4
		a = a.Unmap()
	default:
		fam = 6
	}
	hl := HeaderLen(a)
	var port uint16
	if fam != 0 {
		port = exporter.Port()
	}
	dst = append(dst, byte(Magic>>8), byte(Magic&0xff), Version, byte(t), fam, byte(hl), byte(port>>8), byte(port))
	dst = binary.BigEndian.AppendUint64(dst, uint64(received))
	switch fam {
	case 4:
		b := a.As4()
		dst = append(dst, b[:]...)
	case 6:
		b := a.As16()
		dst = append(dst, b[:]...)
	}
	return dst
}

// IsEnvelope reports whether data starts with the envelope magic.
func IsEnvelope(data []byte) bool {
	return len(data) >= 2 && binary.BigEndian.Uint16(data) == Magic
}

// Parse reads the header of an envelope and returns it with the payload,
// which aliases data. A datagram without the magic returns ErrNotEnvelope.
func Parse(data []byte) (Header, []byte, error) {
	var h Header
	if !IsEnvelope(data) {
		return h, nil, ErrNotEnvelope
	}
	if len(data) < baseLen {
		return h, nil, fmt.Errorf("%w: %d bytes, header needs %d", ErrMalformed, len(data), baseLen)
	}
	if data[2] != Version {
		return h, nil, fmt.Errorf("%w: envelope version %d, this build reads version %d", ErrMalformed, data[2], Version)
	}
	h.Type = Type(data[3] &^ FlagAuth)
	h.Authenticated = data[3]&FlagAuth != 0
	end := len(data)
	if h.Authenticated {
		end -= TagLen
	}
	if h.Type < TypePacket || h.Type > TypeProbeReply {
		return h, nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, data[3])
	}
	fam, hl := data[4], int(data[5])
	want := baseLen
	switch fam {
	case 0:
	case 4:
		want += 4
	case 6:
		want += 16
	default:
		return h, nil, fmt.Errorf("%w: address family %d", ErrMalformed, fam)
	}
	if hl < want || hl > end {
		return h, nil, fmt.Errorf("%w: header length %d (want %d, datagram %d bytes)", ErrMalformed, hl, want, len(data))
	}
	port := binary.BigEndian.Uint16(data[6:])
	h.Received = int64(binary.BigEndian.Uint64(data[8:]))
	switch fam {
	case 4:
		h.Exporter = netip.AddrPortFrom(netip.AddrFrom4([4]byte(data[16:20])), port)
	case 6:
		h.Exporter = netip.AddrPortFrom(netip.AddrFrom16([16]byte(data[16:32])), port)
	}
	if h.Type == TypePacket && fam == 0 {
		return h, nil, fmt.Errorf("%w: packet envelope without an exporter", ErrMalformed)
	}
	return h, data[hl:end], nil
}
