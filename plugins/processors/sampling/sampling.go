// Package sampling is processors.sampling: it renormalizes the packets and
// bytes of sampled flows by their 1-in-N sampling rate, so that stored
// counters estimate the real traffic.
//
// The rate of a record comes, first match wins, from: a per-exporter rate in
// the configuration (an operator's override), the rate the exporter
// announced (v5 header, options data by sampler id or for the whole
// observation domain, or the record itself; set by processors.templates),
// then default_rate. A record with none of these is passed on unscaled and
// counted.
package sampling

import (
	"context"
	_ "embed"
	"fmt"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Processors, "sampling", sample, func() any {
		return &Sampling{}
	})
}

// Sampling is the processor and its configuration.
type Sampling struct {
	// DefaultRate applies to records whose exporter announced no rate; 0
	// leaves them unscaled and counts them as unknown.
	DefaultRate uint32 `toml:"default_rate"`
	// Rates maps exporter addresses to a rate that overrides what they announce.
	Rates map[string]uint32 `toml:"rates"`

	overrides map[netip.Addr]uint32
	unknown   prometheus.Counter
}

var (
	_ core.Processor   = (*Sampling)(nil)
	_ core.Initializer = (*Sampling)(nil)
)

// Init parses the per-exporter rates and registers the unknown-rate counter.
func (s *Sampling) Init(env *core.Env) error {
	s.overrides = make(map[netip.Addr]uint32, len(s.Rates))
	for a, rate := range s.Rates {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("rates: exporter %q is not an IP address: %w", a, err)
		}
		if rate == 0 {
			return fmt.Errorf("rates: exporter %s: rate must be at least 1", a)
		}
		s.overrides[addr.Unmap()] = rate
	}
	s.unknown = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "flowline", Name: "sampling_unknown_rate_total",
		Help: "Flow records whose sampling rate was unknown (passed on unscaled).",
	})
	if err := env.Metrics.Register(s.unknown); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	return nil
}

// Process scales every record of the batch in place and passes it on.
func (s *Sampling) Process(_ context.Context, in *core.Batch, emit core.Emit) error {
	var unknown int
	for i := range in.Records {
		r := &in.Records[i]
		if r.Flags&(core.FlagRenormalized|core.FlagOptions) != 0 {
			continue
		}
		rate, ok := s.overrides[r.Exporter]
		if !ok {
			rate = 0
			if r.Present&core.FieldSamplingRate != 0 {
				rate = r.SamplingRate
			}
			if rate == 0 {
				rate = s.DefaultRate
			}
		}
		if rate == 0 {
			unknown++
			continue
		}
		r.Packets *= uint64(rate)
		r.Bytes *= uint64(rate)
		r.SamplingRate = rate
		r.Present |= core.FieldSamplingRate
		r.Flags |= core.FlagRenormalized
	}
	if unknown > 0 && s.unknown != nil {
		s.unknown.Add(float64(unknown))
	}
	emit(in)
	return nil
}

// Flush has nothing to flush: the processor holds no state.
func (s *Sampling) Flush(context.Context, core.Emit) error { return nil }
