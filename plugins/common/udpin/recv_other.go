//go:build !(linux && (amd64 || arm64))

package udpin

import (
	"net"
	"net/netip"
)

// receiver reads one datagram per system call where recvmmsg(2) is not
// available.
type receiver struct {
	c   *net.UDPConn
	buf []byte
}

func newReceiver(c *net.UDPConn) (*receiver, error) {
	return &receiver{c: c, buf: make([]byte, MaxDatagram)}, nil
}

// read returns the next datagram (valid until the next call) and its sender.
func (r *receiver) read() ([]byte, netip.AddrPort, error) {
	n, from, err := r.c.ReadFromUDPAddrPort(r.buf)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	return r.buf[:n], from, nil
}
