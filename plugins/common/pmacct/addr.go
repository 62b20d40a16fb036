package pmacct

import "net/netip"

// How pmacct writes addresses, networks and MAC addresses: one place for
// every plugin that writes or keys on them (print, amqp, mysql, influxdb,
// the aggregate).

// Network is the net_src / net_dst primitive: a masked to bits. A mask of 0
// gives the zero network (0.0.0.0 or ::), as nfacctd writes it for an
// exporter that knows no route (checked against nfacctd 1.7 in
// tests/pmacct); masking a network again gives the same network.
func Network(a netip.Addr, bits uint8) netip.Addr {
	if !a.IsValid() {
		return a
	}
	pfx, err := a.Unmap().Prefix(int(bits))
	if err != nil {
		return a.Unmap()
	}
	return pfx.Addr()
}

// AppendAddr appends an address as nfacctd prints it; an absent one prints
// as 0.0.0.0, as nfacctd prints a selected but unset address.
func AppendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, "0.0.0.0"...)
	}
	return a.Unmap().AppendTo(b)
}

const hexDigits = "0123456789abcdef"

// AppendMAC appends a MAC address as nfacctd prints it (lower-case hex,
// colons).
func AppendMAC(b []byte, m *[6]byte) []byte {
	for i, x := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
	}
	return b
}
