// Package pmacct holds what Flowline knows of pmacct's output forms and
// shares between plugins: the names of IP protocols, the JSON and CSV lines
// of the print plugin (which the amqp plugin publishes too), and the reading
// of those JSON lines back into records (inputs.amqp).
package pmacct

import "strconv"

// ProtoNames is the protocol table nfacctd 1.7.7 prints and writes ip_proto
// with (obtained by sending it every protocol number 0..255); numbers without
// a name are written as decimal strings.
var ProtoNames = [256]string{
	1: "icmp", 2: "igmp", 3: "ggp", 4: "ipencap", 6: "tcp", 8: "egp", 9: "igp",
	17: "udp", 18: "mux", 41: "ipv6", 43: "ipv6-route", 44: "ipv6-frag",
	46: "rsvp", 47: "gre", 50: "esp", 51: "ah", 55: "mobile", 56: "tlsp",
	58: "ipv6-icmp", 59: "ipv6-nonxt", 60: "ipv6-opts", 80: "iso-ip",
	83: "vines", 88: "eigrp", 89: "ospf", 91: "larp", 93: "ax.25", 94: "ipip",
	98: "encap", 102: "pnni", 103: "pim", 108: "IPcomp", 111: "ipx-in-ip",
	112: "vrrp", 115: "l2tp", 124: "isis", 132: "sctp", 133: "fc",
}

// AppendProto appends pmacct's form of protocol p: its name, or its number.
func AppendProto(b []byte, p uint8) []byte {
	if n := ProtoNames[p]; n != "" {
		return append(b, n...)
	}
	return strconv.AppendUint(b, uint64(p), 10)
}
