// Package flowgen generates NetFlow v5, NetFlow v9 (RFC 3954) and IPFIX
// (RFC 7011) traffic with realistic, seeded content and exact totals.
//
// The encoders in this package are written from the RFCs and are
// deliberately independent of the decoders in plugins/common/netflow, so
// that end-to-end tests which send flowgen traffic through the collector
// check two independent implementations against each other.
//
// Use Run to send traffic to a collector over UDP, or NewGenerator and
// Generator.Next to build datagrams without sockets (benchmarks, in-process
// tests).
package flowgen

import (
	"fmt"
	"net/netip"
	"time"
)

// Config describes the traffic to generate.
type Config struct {
	// Target is the collector address, for example "127.0.0.1:9995".
	Target string
	// Version is 5, 9 or 10 (IPFIX).
	Version int
	// Flows is the total number of flows to send; 0 means until Duration
	// elapses or the context ends.
	Flows uint64
	// Duration bounds the run in time; 0 means until Flows are sent.
	Duration time.Duration
	// Rate is the number of flows per second; 0 means as fast as possible.
	Rate uint64
	// FlowsPerPacket is the number of flow records per data datagram
	// (default 30; at most 30 for NetFlow v5).
	FlowsPerPacket int
	// Seed makes the content deterministic: the same seed (and Clock) gives
	// the same datagrams.
	Seed int64
	// SourceIDs is the number of v9 source ids or IPFIX observation domains
	// per exporter (default 1). Packets are spread over them round robin.
	// For NetFlow v5 it is the number of engine ids.
	SourceIDs int
	// Exporters lists local source IP addresses to send from, one UDP socket
	// each; packets are spread over them round robin. Empty means one socket
	// on any local address.
	Exporters []string
	// SamplingRate announces 1-in-N packet sampling when greater than 1:
	// in the v5 header, or with an options template and options data record
	// per source id for v9 and IPFIX, and a sampler id in every data record.
	// The counters in the records are the sampled ones.
	SamplingRate uint32
	// TemplateEvery resends templates (and sampling options) every N data
	// packets per source id. When both TemplateEvery and TemplateInterval
	// are 0 it defaults to 100.
	TemplateEvery int
	// TemplateInterval resends templates when this much time has passed
	// since the last ones of a source id, whichever of the two comes first.
	TemplateInterval time.Duration
	// TemplateDelay sends the first N data packets of every source id before
	// its first template, to test collectors with data that arrives early.
	TemplateDelay int
	// HostPool is the number of distinct client hosts (default 1000);
	// there are about HostPool/10 servers.
	HostPool int
	// Distinct gives every flow a 5-tuple of its own (the client address
	// counts up, as in a spoofed-source flood) instead of drawing from the
	// HostPool's bounded set.
	Distinct bool
	// IPv6Share is the fraction of flows that are IPv6 (0 to 1); IPv6 flows
	// use a separate template. It must be 0 for NetFlow v5.
	IPv6Share float64
	// Clock returns the current time for header and flow timestamps and
	// for TemplateInterval; nil means time.Now. A fixed clock makes the
	// output byte for byte reproducible.
	Clock func() time.Time
}

// Totals are exact counts of generated (Generator) or sent (Run) traffic.
type Totals struct {
	// Packets is the number of datagrams, data and template ones.
	Packets uint64 `json:"packets"`
	// Flows is the number of flow data records (options records excluded).
	Flows uint64 `json:"flows"`
	// FlowPackets is the sum of the flow records' packet counters.
	FlowPackets uint64 `json:"flow_packets"`
	// FlowBytes is the sum of the flow records' byte counters.
	FlowBytes uint64 `json:"flow_bytes"`
	// TemplatePackets is the number of datagrams that carry templates
	// (and sampling options) and no flow records.
	TemplatePackets uint64 `json:"template_packets"`
}

// Add adds the counts of a generated packet to t.
func (t *Totals) Add(p PacketInfo) {
	t.Packets++
	if p.Kind == PacketTemplate {
		t.TemplatePackets++
	}
	t.Flows += uint64(p.Flows)
	t.FlowPackets += p.FlowPackets
	t.FlowBytes += p.FlowBytes
}

// ConfigError reports an invalid Config field.
type ConfigError struct {
	// Field is the name of the Config field, for example "Version".
	Field string
	// Msg says what is wrong with it.
	Msg string
}

// Error returns "flowgen: Field: message".
func (e *ConfigError) Error() string { return "flowgen: " + e.Field + ": " + e.Msg }

func cfgErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// maxDatagram is the largest UDP payload over IPv4.
const maxDatagram = 65507

// normalize checks cfg, fills in defaults and parses the exporters.
func normalize(cfg Config) (Config, []netip.Addr, error) {
	switch cfg.Version {
	case 5, 9, 10:
	default:
		return cfg, nil, cfgErr("Version", "must be 5, 9 or 10 (IPFIX), got %d", cfg.Version)
	}
	if cfg.FlowsPerPacket == 0 {
		cfg.FlowsPerPacket = 30
	}
	if cfg.FlowsPerPacket < 0 {
		return cfg, nil, cfgErr("FlowsPerPacket", "must be positive, got %d", cfg.FlowsPerPacket)
	}
	if cfg.Version == 5 && cfg.FlowsPerPacket > 30 {
		return cfg, nil, cfgErr("FlowsPerPacket", "NetFlow v5 carries at most 30 flows per packet, got %d", cfg.FlowsPerPacket)
	}
	if cfg.Version != 5 {
		if max := (maxDatagram - 64) / maxRecordLen; cfg.FlowsPerPacket > max {
			return cfg, nil, cfgErr("FlowsPerPacket", "at most %d flows fit in one datagram, got %d", max, cfg.FlowsPerPacket)
		}
	}
	if cfg.SourceIDs == 0 {
		cfg.SourceIDs = 1
	}
	if cfg.SourceIDs < 0 || (cfg.Version == 5 && cfg.SourceIDs > 256) || cfg.SourceIDs > 1<<20 {
		return cfg, nil, cfgErr("SourceIDs", "out of range: %d", cfg.SourceIDs)
	}
	if cfg.Version == 5 && cfg.SamplingRate > 0x3fff {
		return cfg, nil, cfgErr("SamplingRate", "NetFlow v5 announces at most 16383, got %d", cfg.SamplingRate)
	}
	if cfg.TemplateEvery < 0 {
		return cfg, nil, cfgErr("TemplateEvery", "must not be negative, got %d", cfg.TemplateEvery)
	}
	if cfg.TemplateInterval < 0 {
		return cfg, nil, cfgErr("TemplateInterval", "must not be negative, got %s", cfg.TemplateInterval)
	}
	if cfg.TemplateEvery == 0 && cfg.TemplateInterval == 0 {
		cfg.TemplateEvery = 100
	}
	if cfg.TemplateDelay < 0 {
		return cfg, nil, cfgErr("TemplateDelay", "must not be negative, got %d", cfg.TemplateDelay)
	}
	if cfg.HostPool == 0 {
		cfg.HostPool = 1000
	}
	if cfg.HostPool < 0 || cfg.HostPool > 1<<22 {
		return cfg, nil, cfgErr("HostPool", "must be between 1 and %d, got %d", 1<<22, cfg.HostPool)
	}
	if !(cfg.IPv6Share >= 0 && cfg.IPv6Share <= 1) {
		return cfg, nil, cfgErr("IPv6Share", "must be between 0 and 1, got %v", cfg.IPv6Share)
	}
	if cfg.Version == 5 && cfg.IPv6Share > 0 {
		return cfg, nil, cfgErr("IPv6Share", "NetFlow v5 cannot carry IPv6 flows")
	}
	if cfg.Duration < 0 {
		return cfg, nil, cfgErr("Duration", "must not be negative, got %s", cfg.Duration)
	}
	var exps []netip.Addr
	for _, s := range cfg.Exporters {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return cfg, nil, cfgErr("Exporters", "bad address %q: %v", s, err)
		}
		exps = append(exps, a.Unmap())
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return cfg, exps, nil
}
