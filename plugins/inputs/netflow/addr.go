package netflow

import "net/netip"

// netipUnmap turns an IPv4-mapped IPv6 source (from a dual-stack socket) into
// the plain IPv4 address, so that an exporter has one identity.
func netipUnmap(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Is4In6() {
		return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	return a
}

// soReusePort is SO_REUSEPORT on Linux, which package syscall does not name.
const soReusePort = 0xf
