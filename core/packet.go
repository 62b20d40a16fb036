package core

import "net/netip"

// Packet is one export datagram as it arrived.
type Packet struct {
	// Data is the UDP payload. It points into memory owned by the Batch and is
	// valid only while the batch is.
	Data []byte
	// Exporter is the source address and port of the device that exported
	// the datagram (for enveloped packets, the address the envelope carries).
	Exporter netip.AddrPort
	// Received is the arrival time in Unix nanoseconds.
	Received int64
	// Input is the name (alias if set) of the input that received the packet.
	Input string
}
