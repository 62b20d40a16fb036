package flowgen

import (
	"math"
	"math/bits"
)

// rng is a small splitmix64 generator: deterministic for a seed, fast and
// free of allocations.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix(r.s)
}

// intn returns a number in [0, n).
func (r *rng) intn(n uint64) uint64 {
	hi, _ := bits.Mul64(r.next(), n)
	return hi
}

// float returns a number in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// mix is the splitmix64 finalizer, also used to derive stable tuple content
// from a tuple index.
func mix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// flow is one generated flow, before encoding.
type flow struct {
	v6               bool
	src, dst, nh     [16]byte // IPv4 addresses use the first 4 bytes
	srcPort, dstPort uint16
	proto, tos       uint8
	flags            uint8
	srcMask, dstMask uint8
	inIf, outIf      uint32
	srcAS, dstAS     uint32
	packets, bytes   uint64
	startAgo, endAgo uint32 // milliseconds before the export time
}

// tuplesPerHost bounds the distinct 5-tuples to about HostPool*tuplesPerHost.
const tuplesPerHost = 20

// portsPerClient is how many ephemeral ports one client uses.
const portsPerClient = 5

type weighted struct {
	v uint16
	w uint16
}

// Server ports by protocol with rough popularity weights.
var (
	tcpPorts = expand([]weighted{{443, 50}, {80, 18}, {22, 4}, {25, 3}, {3306, 3}, {8080, 5}, {993, 3}, {5432, 2}, {8443, 3}, {445, 2}, {3389, 2}, {179, 1}})
	udpPorts = expand([]weighted{{53, 45}, {123, 12}, {443, 20}, {161, 5}, {514, 5}, {500, 3}, {4500, 3}, {1194, 2}, {5060, 3}, {67, 2}})
	// ICMP type*256+code: echo request, echo reply, port unreachable,
	// time exceeded, host unreachable.
	icmpTypes = expand([]weighted{{8 << 8, 40}, {0, 40}, {3<<8 | 3, 10}, {11 << 8, 7}, {3<<8 | 1, 3}})
	serverAS  = []uint32{15169, 13335, 16509, 8075, 32934, 2906, 20940, 54113, 3356, 1299}
	// Plausible TCP flag combinations: for one-packet flows and longer ones.
	tcpFlagsShort = []uint8{0x02, 0x02, 0x10, 0x04, 0x14, 0x12}
	tcpFlagsLong  = []uint8{0x1b, 0x1b, 0x1b, 0x1b, 0x1a, 0x18, 0x10, 0x19, 0x1f, 0x1e, 0x13}
	tosValues     = []uint8{0xb8, 0x20, 0x28, 0x48, 0x88}
)

// expand turns weights into a table that a uniform index picks from.
func expand(ws []weighted) []uint16 {
	var out []uint16
	for _, w := range ws {
		for range w.w {
			out = append(out, w.v)
		}
	}
	return out
}

// pool holds what is needed to derive flow content.
type pool struct {
	seed     uint64
	hosts    uint64
	servers  uint64
	tuples   uint64
	ipv6     float64
	clientV4 uint32
	serverV4 uint32
	// distinct makes the tuple index count up, one new client per flow.
	distinct bool
	next     uint64
}

func newPool(seed int64, hosts int, ipv6 float64, distinct bool) pool {
	servers := uint64(hosts / 10)
	if servers == 0 {
		servers = 1
	}
	return pool{
		seed:     mix(uint64(seed) ^ 0x5bd1e9955bd1e995),
		hosts:    uint64(hosts),
		servers:  servers,
		tuples:   uint64(hosts) * tuplesPerHost,
		ipv6:     ipv6,
		clientV4: 10<<24 | 1<<16, // 10.1.0.0/16 (larger pools continue into 10.2.0.0 and on)
		serverV4: 172<<24 | 16<<16,
		distinct: distinct,
	}
}

func putV4(b *[16]byte, a uint32) {
	b[0], b[1], b[2], b[3] = byte(a>>24), byte(a>>16), byte(a>>8), byte(a)
}

// putV6 writes prefix (the first 8 bytes) followed by the 64-bit id.
func putV6(b *[16]byte, prefix uint64, id uint64) {
	for i := range 8 {
		b[i] = byte(prefix >> (56 - 8*i))
		b[8+i] = byte(id >> (56 - 8*i))
	}
}

const (
	clientV6 = 0x20010db800010000 // 2001:db8:1::/64 and up
	serverV6 = 0x20010db800ff0000
	hopV6    = 0x20010db800000000
)

// fill draws the next flow into f.
//
// The 5-tuple comes from a tuple index in [0, HostPool*20): its client,
// server (Zipf-like popularity), ports, protocol and direction are derived
// from the index alone, so the number of distinct 5-tuples stays bounded and
// aggregation merges flows. Counters, flags and times are drawn per flow.
func (p *pool) fill(r *rng, f *flow) {
	k := r.intn(p.tuples)
	h := mix(p.seed ^ (k+1)*0x9e3779b97f4a7c15)
	client := k % p.hosts
	sub := k / p.hosts
	if p.distinct {
		// A new client per flow: the tuple differs in its source (or,
		// answered, its destination) address.
		client, sub = p.next, 0
		p.next++
	}
	// Zipf-like server popularity: u^3 crowds indices near 0.
	u := float64(h>>11) / (1 << 53)
	server := uint64(float64(p.servers) * u * u * u)
	h2 := mix(h)
	var proto uint8
	var sport, dport uint16
	switch x := h2 % 100; {
	case x < 80:
		proto = 6
		dport = tcpPorts[(h2>>8)%uint64(len(tcpPorts))]
	case x < 97:
		proto = 17
		dport = udpPorts[(h2>>8)%uint64(len(udpPorts))]
	default:
		proto = 1
		dport = icmpTypes[(h2>>8)%uint64(len(icmpTypes))]
	}
	if proto != 1 {
		ph := mix(p.seed ^ (client<<8 | sub%portsPerClient) ^ 0x1234567)
		sport = uint16(32768 + ph%(60999-32768+1))
	}
	reverse := proto != 1 && (h2>>24)%10 < 4 // 40% are the server's answers
	inIf := uint32(1 + (h2>>32)%8)
	outIf := uint32(1 + (h2>>40)%8)
	if outIf == inIf {
		outIf = inIf%8 + 1
	}
	clientAS := uint32(64512 + client%50)
	sAS := serverAS[server%uint64(len(serverAS))]

	f.v6 = p.ipv6 > 0 && r.float() < p.ipv6
	var caddr, saddr [16]byte
	if f.v6 {
		putV6(&caddr, clientV6+client>>16, client&0xffff+1)
		putV6(&saddr, serverV6, server+1)
		putV6(&f.nh, hopV6, uint64(outIf))
		f.srcMask, f.dstMask = 64, 48
	} else {
		putV4(&caddr, p.clientV4+uint32(client)+1)
		putV4(&saddr, p.serverV4+uint32(server)+1)
		putV4(&f.nh, 10<<24|uint32(outIf))
		f.srcMask, f.dstMask = 16, 24
	}
	f.proto = proto
	f.inIf, f.outIf = inIf, outIf
	if reverse {
		f.src, f.dst = saddr, caddr
		f.srcPort, f.dstPort = dport, sport
		f.srcAS, f.dstAS = sAS, clientAS
		f.srcMask, f.dstMask = f.dstMask, f.srcMask
	} else {
		f.src, f.dst = caddr, saddr
		f.srcPort, f.dstPort = sport, dport
		f.srcAS, f.dstAS = clientAS, sAS
	}

	// Heavy-tailed packets per flow: Pareto with alpha 1.2, capped.
	pk := uint64(math.Pow(1-r.float(), -1/1.2))
	if pk < 1 {
		pk = 1
	}
	if pk > 10000 {
		pk = 10000
	}
	var size uint64
	switch {
	case proto == 1:
		size = 64 + r.intn(64)
		if pk > 20 {
			pk = 1 + pk%20
		}
	case proto == 17 && (dport == 53 || sport == 53 || dport == 123 || sport == 123):
		pk = 1 + pk%2
		size = 60 + r.intn(450)
	default:
		size = 40 + r.intn(1500-40+1)
	}
	f.packets = pk
	f.bytes = pk * size
	f.flags = 0
	if proto == 6 {
		if pk == 1 {
			f.flags = tcpFlagsShort[r.intn(uint64(len(tcpFlagsShort)))]
		} else {
			f.flags = tcpFlagsLong[r.intn(uint64(len(tcpFlagsLong)))]
		}
	}
	f.tos = 0
	if r.intn(100) < 5 {
		f.tos = tosValues[r.intn(uint64(len(tosValues)))]
	}
	f.endAgo = uint32(r.intn(5000))
	dur := uint32(0)
	if pk > 1 {
		dur = uint32(min(pk*(1+r.intn(40)), 120000))
	}
	f.startAgo = f.endAgo + dur
}
