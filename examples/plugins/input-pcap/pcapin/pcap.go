package pcapin

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// datagram is one UDP datagram of a capture.
type datagram struct {
	time    int64 // capture time, Unix nanoseconds
	src     netip.AddrPort
	dstPort uint16
	payload []byte
}

// reader reads UDP datagrams from a classic pcap file (not pcapng).
type reader struct {
	r        *bufio.Reader
	order    binary.ByteOrder
	nano     bool
	linkType uint32
	hdr      [16]byte
	buf      []byte
}

const maxSnap = 256 << 10

func newReader(r io.Reader) (*reader, error) {
	pr := &reader{r: bufio.NewReaderSize(r, 1<<20)}
	var gh [24]byte
	if _, err := io.ReadFull(pr.r, gh[:]); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	switch binary.LittleEndian.Uint32(gh[:4]) {
	case 0xa1b2c3d4:
		pr.order = binary.LittleEndian
	case 0xa1b23c4d:
		pr.order, pr.nano = binary.LittleEndian, true
	case 0xd4c3b2a1:
		pr.order = binary.BigEndian
	case 0x4d3cb2a1:
		pr.order, pr.nano = binary.BigEndian, true
	case 0x0a0d0d0a:
		return nil, errors.New("pcapng files are not supported: convert with `editcap -F pcap in.pcapng out.pcap`")
	default:
		return nil, errors.New("not a pcap file")
	}
	pr.linkType = pr.order.Uint32(gh[20:24]) & 0x0fffffff
	switch pr.linkType {
	case 0, 1, 12, 101, 113, 276:
	default:
		return nil, fmt.Errorf("link type %d is not supported (Ethernet, Linux cooked, raw IP and loopback are)", pr.linkType)
	}
	return pr, nil
}

// next returns the next UDP datagram; io.EOF at the end. Frames that are
// not UDP over IPv4/IPv6 are skipped. The payload is valid until the next
// call.
func (pr *reader) next() (datagram, error) {
	for {
		if _, err := io.ReadFull(pr.r, pr.hdr[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return datagram{}, errors.New("pcap: truncated record header")
			}
			return datagram{}, err
		}
		sec, frac := pr.order.Uint32(pr.hdr[0:4]), pr.order.Uint32(pr.hdr[4:8])
		n := pr.order.Uint32(pr.hdr[8:12])
		if n > maxSnap {
			return datagram{}, fmt.Errorf("pcap: record of %d bytes", n)
		}
		if cap(pr.buf) < int(n) {
			pr.buf = make([]byte, n)
		}
		frame := pr.buf[:n]
		if _, err := io.ReadFull(pr.r, frame); err != nil {
			return datagram{}, fmt.Errorf("pcap: truncated record: %w", err)
		}
		d, ok := pr.udp(frame)
		if !ok {
			continue
		}
		ns := int64(frac) * 1000
		if pr.nano {
			ns = int64(frac)
		}
		d.time = int64(sec)*1e9 + ns
		return d, nil
	}
}

// udp finds the UDP datagram in a frame of the file's link type.
func (pr *reader) udp(f []byte) (datagram, bool) {
	var ethType uint16
	switch pr.linkType {
	case 1: // Ethernet, with any 802.1Q tags
		if len(f) < 14 {
			return datagram{}, false
		}
		ethType, f = binary.BigEndian.Uint16(f[12:14]), f[14:]
		for (ethType == 0x8100 || ethType == 0x88a8) && len(f) >= 4 {
			ethType, f = binary.BigEndian.Uint16(f[2:4]), f[4:]
		}
	case 113: // Linux cooked
		if len(f) < 16 {
			return datagram{}, false
		}
		ethType, f = binary.BigEndian.Uint16(f[14:16]), f[16:]
	case 276: // Linux cooked v2
		if len(f) < 20 {
			return datagram{}, false
		}
		ethType, f = binary.BigEndian.Uint16(f[0:2]), f[20:]
	case 0: // BSD loopback: a 4-byte family in host order
		if len(f) < 4 {
			return datagram{}, false
		}
		f = f[4:]
		fallthrough
	default: // raw IP
		if len(f) == 0 {
			return datagram{}, false
		}
		ethType = 0x0800
		if f[0]>>4 == 6 {
			ethType = 0x86dd
		}
	}
	var src netip.Addr
	switch ethType {
	case 0x0800:
		if len(f) < 20 || f[0]>>4 != 4 {
			return datagram{}, false
		}
		ihl := int(f[0]&0xf) * 4
		if ihl < 20 || len(f) < ihl || f[9] != 17 {
			return datagram{}, false
		}
		if binary.BigEndian.Uint16(f[6:8])&0x1fff != 0 {
			return datagram{}, false // a later fragment
		}
		src = netip.AddrFrom4([4]byte(f[12:16]))
		f = f[ihl:]
	case 0x86dd:
		if len(f) < 40 || f[6] != 17 {
			return datagram{}, false
		}
		src = netip.AddrFrom16([16]byte(f[8:24]))
		f = f[40:]
	default:
		return datagram{}, false
	}
	if len(f) < 8 {
		return datagram{}, false
	}
	ulen := int(binary.BigEndian.Uint16(f[4:6]))
	if ulen < 8 || ulen > len(f) {
		ulen = len(f) // a capture with a wrong or zero UDP length: take what is there
	}
	return datagram{
		src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(f[0:2])),
		dstPort: binary.BigEndian.Uint16(f[2:4]),
		payload: f[8:ulen],
	}, true
}
