package sampling

import (
	"context"
	"net/netip"
	"testing"

	"github.com/flowline/flowline/core"
)

func TestRatePrecedence(t *testing.T) {
	s := &Sampling{DefaultRate: 10, Rates: map[string]uint32{"192.0.2.9": 1000}}
	if err := s.Init(core.NewEnv("test", "")); err != nil {
		t.Fatal(err)
	}
	exp := netip.MustParseAddr("192.0.2.1")
	over := netip.MustParseAddr("192.0.2.9")
	b := core.NewBatch()
	b.Records = append(b.Records,
		// Announced by the exporter: 100.
		core.Record{Exporter: exp, Packets: 2, Bytes: 300, SamplingRate: 100, Present: core.FieldSamplingRate},
		// Nothing announced: default_rate.
		core.Record{Exporter: exp, Packets: 2, Bytes: 300},
		// Override wins over the announced rate.
		core.Record{Exporter: over, Packets: 2, Bytes: 300, SamplingRate: 100, Present: core.FieldSamplingRate},
		// Already renormalized: untouched.
		core.Record{Exporter: exp, Packets: 2, Bytes: 300, Flags: core.FlagRenormalized},
	)
	var out *core.Batch
	if err := s.Process(context.Background(), b, func(x *core.Batch) { out = x }); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		pkts, bytes uint64
		rate        uint32
	}{{200, 30000, 100}, {20, 3000, 10}, {2000, 300000, 1000}, {2, 300, 0}}
	for i, w := range want {
		r := out.Records[i]
		if r.Packets != w.pkts || r.Bytes != w.bytes || r.SamplingRate != w.rate {
			t.Errorf("record %d: %d pkts %d bytes rate %d; want %+v", i, r.Packets, r.Bytes, r.SamplingRate, w)
		}
	}
	out.Release()
}

func TestUnknownRateCountedAndUnscaled(t *testing.T) {
	s := &Sampling{}
	if err := s.Init(core.NewEnv("test", "")); err != nil {
		t.Fatal(err)
	}
	b := core.NewBatch()
	b.Records = append(b.Records, core.Record{Packets: 3, Bytes: 30})
	var out *core.Batch
	_ = s.Process(context.Background(), b, func(x *core.Batch) { out = x })
	if r := out.Records[0]; r.Packets != 3 || r.Bytes != 30 || r.Flags&core.FlagRenormalized != 0 {
		t.Errorf("record with unknown rate changed: %+v", r)
	}
	if got := testCounter(s); got != 1 {
		t.Errorf("unknown-rate counter = %v, want 1", got)
	}
	out.Release()
}

func TestBadRates(t *testing.T) {
	for _, rates := range []map[string]uint32{{"not-an-ip": 10}, {"10.0.0.1": 0}} {
		s := &Sampling{Rates: rates}
		if err := s.Init(core.NewEnv("test", "")); err == nil {
			t.Errorf("Init with rates %v succeeded; want an error", rates)
		}
	}
}
