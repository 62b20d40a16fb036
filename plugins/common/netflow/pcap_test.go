package netflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
)

// pcapPacket is one UDP datagram read from a pcap file.
type pcapPacket struct {
	src, dst netip.AddrPort
	ts       int64
	payload  []byte
}

// readPcap is a tiny pcap reader: classic pcap (either byte order, micro- or
// nanosecond timestamps) with Ethernet + IPv4 + UDP frames.
func readPcap(path string) ([]pcapPacket, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 24 {
		return nil, fmt.Errorf("%s: short pcap header", path)
	}
	var bo binary.ByteOrder
	nano := false
	switch binary.LittleEndian.Uint32(data) {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xa1b23c4d:
		bo, nano = binary.LittleEndian, true
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	case 0x4d3cb2a1:
		bo, nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("%s: not a pcap file", path)
	}
	if lt := bo.Uint32(data[20:]); lt != 1 {
		return nil, fmt.Errorf("%s: link type %d, want Ethernet", path, lt)
	}
	var out []pcapPacket
	off := 24
	for len(data)-off >= 16 {
		sec, frac := int64(bo.Uint32(data[off:])), int64(bo.Uint32(data[off+4:]))
		incl := int(bo.Uint32(data[off+8:]))
		off += 16
		if incl > len(data)-off {
			return nil, fmt.Errorf("%s: truncated record at %d", path, off)
		}
		frame := data[off : off+incl]
		off += incl
		if !nano {
			frac *= 1000
		}
		if len(frame) < 14+20+8 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		udp := ip[ihl:]
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(udp))
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(udp[2:]))
		ulen := int(binary.BigEndian.Uint16(udp[4:]))
		payload := udp[8:]
		if ulen >= 8 && ulen-8 < len(payload) {
			payload = payload[:ulen-8]
		}
		out = append(out, pcapPacket{src: src, dst: dst, ts: sec*1e9 + frac, payload: payload})
	}
	return out, nil
}
