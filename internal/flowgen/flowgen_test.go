package flowgen

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return t0 }

// collect runs a generator to the end (bounded) and returns its packets.
func collect(t *testing.T, cfg Config) (*Generator, [][]byte, []PacketKind) {
	t.Helper()
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	var kinds []PacketKind
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatal("generator does not end")
		}
		p, k, n := g.Next()
		if k == PacketNone {
			break
		}
		if k == PacketTemplate && n != 0 {
			t.Fatalf("template packet with %d flows", n)
		}
		pkts = append(pkts, bytes.Clone(p))
		kinds = append(kinds, k)
	}
	return g, pkts, kinds
}

// sumRecords adds up parsed records.
func sumRecords(recs []prec) (flows, pk, by uint64) {
	for _, r := range recs {
		flows++
		pk += r.uint(2)
		by += r.uint(1)
	}
	return
}

func TestV5(t *testing.T) {
	cfg := Config{Version: 5, Flows: 1000, Seed: 7, SamplingRate: 100, SourceIDs: 2, Clock: fixedClock}
	g, pkts, _ := collect(t, cfg)
	p := newParser()
	var tot Totals
	seq := map[uint8]uint32{}
	for _, b := range pkts {
		pk, err := p.parse(b)
		if err != nil {
			t.Fatal(err)
		}
		h := pk.hdr
		if h.sampling != 1<<14|100 {
			t.Errorf("sampling field %#x", h.sampling)
		}
		if h.secs != uint32(t0.Unix()) || h.uptime != 3600_000 {
			t.Errorf("header times %d %d", h.secs, h.uptime)
		}
		if h.seq != seq[h.engineID] {
			t.Errorf("engine %d seq %d, want %d", h.engineID, h.seq, seq[h.engineID])
		}
		seq[h.engineID] += uint32(h.count)
		if h.count > 30 || h.count != len(pk.records) {
			t.Errorf("count %d", h.count)
		}
		for _, r := range pk.records {
			if r.uint(22) > r.uint(21) || r.uint(21) > uint64(h.uptime) {
				t.Errorf("first %d last %d uptime %d", r.uint(22), r.uint(21), h.uptime)
			}
		}
		f, pc, bc := sumRecords(pk.records)
		tot.Add(PacketInfo{Kind: PacketData, Flows: int(f), FlowPackets: pc, FlowBytes: bc})
	}
	if len(seq) != 2 {
		t.Errorf("engine ids %v", seq)
	}
	if tot != g.Totals() || tot.Flows != 1000 {
		t.Errorf("parsed %+v, generator %+v", tot, g.Totals())
	}
}

func TestV9AndIPFIX(t *testing.T) {
	for _, v := range []int{9, 10} {
		for _, sampling := range []uint32{0, 64} {
			t.Run("", func(t *testing.T) {
				cfg := Config{Version: v, Flows: 5000, Seed: 1, SourceIDs: 3, SamplingRate: sampling,
					IPv6Share: 0.3, TemplateEvery: 10, Clock: fixedClock, Exporters: []string{"127.0.0.2", "127.0.0.3"}}
				checkStream(t, cfg)
			})
		}
	}
}

// checkStream parses everything a generator produces and checks headers,
// sequence numbers, template ordering, options and totals.
func checkStream(t *testing.T, cfg Config) {
	t.Helper()
	g, pkts, kinds := collect(t, cfg)
	cfg = g.Config()
	type sk struct {
		exporter int
		domain   uint32
	}
	// One parser per exporter, as a collector keys templates by exporter.
	parsers := map[int]*parser{}
	seq := map[sk]uint32{}
	seen := map[sk]int{} // data packets before the first template
	hasTmpl := map[sk]bool{}
	sinceTmpl := map[sk]int{}
	var tot Totals
	var v6 int
	type early struct {
		exporter int
		pkt      []byte
	}
	var pending []early // data sent before its template
	// Replay the generator to learn each packet's exporter.
	g2, _ := NewGenerator(cfg)
	for i, b := range pkts {
		g2.Next()
		info := g2.Last()
		if parsers[info.Exporter] == nil {
			parsers[info.Exporter] = newParser()
		}
		pk, err := parsers[info.Exporter].parse(b)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		h := pk.hdr
		key := sk{info.Exporter, h.domain}
		if h.domain != info.SourceID {
			t.Fatalf("domain %d, info %d", h.domain, info.SourceID)
		}
		if h.secs != uint32(t0.Unix()) {
			t.Errorf("export time %d", h.secs)
		}
		if h.seq != seq[key] {
			t.Errorf("packet %d %v: seq %d, want %d", i, key, h.seq, seq[key])
		}
		switch kinds[i] {
		case PacketTemplate:
			want := 1
			if cfg.IPv6Share > 0 {
				want = 2
			}
			if len(pk.templates) != want || len(pk.records) != 0 {
				t.Errorf("template packet: %d templates, %d records", len(pk.templates), len(pk.records))
			}
			if !hasTmpl[key] && seen[key] != cfg.TemplateDelay && tot.Flows < cfg.Flows {
				t.Errorf("%v: first template after %d data packets, want %d", key, seen[key], cfg.TemplateDelay)
			}
			if hasTmpl[key] && sinceTmpl[key] != cfg.TemplateEvery {
				t.Errorf("%v: template after %d data packets", key, sinceTmpl[key])
			}
			hasTmpl[key] = true
			sinceTmpl[key] = 0
			if cfg.SamplingRate > 1 {
				if len(pk.optTmpls) != 1 || len(pk.options) != 1 {
					t.Fatalf("options: %d templates, %d records", len(pk.optTmpls), len(pk.options))
				}
				o := pk.options[0]
				if cfg.Version == 9 {
					if o.uint(48) != 1 || o.uint(34) != uint64(cfg.SamplingRate) || o.uint(1) != uint64(h.domain) {
						t.Errorf("v9 options record %v", o)
					}
				} else if o.uint(302) != 1 || o.uint(305) != 1 || o.uint(306) != uint64(cfg.SamplingRate-1) || o.uint(34) != uint64(cfg.SamplingRate) {
					t.Errorf("ipfix options record %v", o)
				}
			} else if len(pk.optTmpls) != 0 || len(pk.options) != 0 {
				t.Errorf("options without sampling")
			}
		case PacketData:
			if hasTmpl[key] {
				sinceTmpl[key]++
				if pk.unknownSet != 0 {
					t.Errorf("data set without template after template")
				}
			} else {
				seen[key]++
				// Decode it with the templates learned later: the test only
				// checks ordering here.
				if pk.unknownSet == 0 {
					t.Errorf("data decoded before its template")
				}
				pending = append(pending, early{info.Exporter, b})
			}
		}
		if cfg.Version == 9 {
			seq[key]++
			if h.count != len(pk.templates)+len(pk.optTmpls)+len(pk.records)+len(pk.options) && hasTmpl[key] {
				t.Errorf("v9 count %d", h.count)
			}
		} else {
			// Records of data sent before its template are not decodable:
			// take their number from the generator.
			seq[key] += uint32(info.Flows + len(pk.options))
		}
		for _, r := range pk.records {
			if len(r[27]) == 16 {
				v6++
			}
			if cfg.SamplingRate > 1 {
				sel := r.uint(48)
				if cfg.Version == 10 {
					sel = r.uint(302)
				}
				if sel != 1 {
					t.Fatalf("sampler id %d", sel)
				}
			}
			if cfg.Version == 10 {
				if r.uint(152) > r.uint(153) || r.uint(153) > uint64(t0.UnixMilli()) {
					t.Errorf("ipfix start %d end %d", r.uint(152), r.uint(153))
				}
			} else if r.uint(22) > r.uint(21) || r.uint(21) > uint64(h.uptime) {
				t.Errorf("first %d last %d uptime %d", r.uint(22), r.uint(21), h.uptime)
			}
			p := r.uint(4)
			if p != 1 && p != 6 && p != 17 {
				t.Errorf("proto %d", p)
			}
			if p != 6 && r.uint(6) != 0 {
				t.Errorf("tcp flags %d on proto %d", r.uint(6), p)
			}
			if p == 1 && r.uint(7) != 0 {
				t.Errorf("icmp src port %d", r.uint(7))
			}
		}
		f, pc, bc := sumRecords(pk.records)
		if pk.unknownSet == 0 && (int(f) != info.Flows || pc != info.FlowPackets || bc != info.FlowBytes) {
			t.Errorf("packet %d: parsed %d/%d/%d, info %+v", i, f, pc, bc, info)
		}
		tot.Add(PacketInfo{Kind: kinds[i], Flows: int(f), FlowPackets: pc, FlowBytes: bc})
	}
	// Decode the early data with the templates that came later, as a
	// collector's queue would.
	for _, e := range pending {
		pk, err := parsers[e.exporter].parse(e.pkt)
		if err != nil || pk.unknownSet != 0 {
			t.Fatalf("early data: %v, %d unknown sets", err, pk.unknownSet)
		}
		f, pc, bc := sumRecords(pk.records)
		tot.Flows += f
		tot.FlowPackets += pc
		tot.FlowBytes += bc
	}
	if tot != g.Totals() {
		t.Errorf("parsed %+v, generator %+v", tot, g.Totals())
	}
	if g.Totals().Flows != cfg.Flows {
		t.Errorf("flows %d, want %d", g.Totals().Flows, cfg.Flows)
	}
	if cfg.IPv6Share > 0 && cfg.TemplateDelay == 0 {
		share := float64(v6) / float64(tot.Flows)
		if share < cfg.IPv6Share-0.05 || share > cfg.IPv6Share+0.05 {
			t.Errorf("ipv6 share %.3f", share)
		}
	}
	nexp := max(1, len(cfg.Exporters))
	if len(hasTmpl) != nexp*cfg.SourceIDs {
		t.Errorf("streams with templates: %d, want %d", len(hasTmpl), nexp*cfg.SourceIDs)
	}
}

func TestTemplateDelay(t *testing.T) {
	for _, v := range []int{9, 10} {
		// Enough flows for the template to come after the delay.
		checkStream(t, Config{Version: v, Flows: 3000, FlowsPerPacket: 10, TemplateDelay: 5, SourceIDs: 2, Clock: fixedClock, SamplingRate: 10})
		// So few flows that templates are owed at the end.
		g, _, kinds := collect(t, Config{Version: v, Flows: 20, FlowsPerPacket: 10, TemplateDelay: 5, SourceIDs: 2, Clock: fixedClock})
		want := []PacketKind{PacketData, PacketData, PacketTemplate, PacketTemplate}
		if len(kinds) != len(want) {
			t.Fatalf("kinds %v, want %v", kinds, want)
		}
		for i := range want {
			if kinds[i] != want[i] {
				t.Fatalf("kinds %v, want %v", kinds, want)
			}
		}
		if tt := g.Totals(); tt.Flows != 20 || tt.Packets != 4 || tt.TemplatePackets != 2 {
			t.Errorf("totals %+v", tt)
		}
	}
}

func TestTemplateFirst(t *testing.T) {
	_, _, kinds := collect(t, Config{Version: 10, Flows: 100, FlowsPerPacket: 10, TemplateEvery: 3, Clock: fixedClock})
	// T D D D T D D D T D D D T D
	for i, k := range kinds {
		want := PacketData
		if i%4 == 0 {
			want = PacketTemplate
		}
		if k != want {
			t.Fatalf("packet %d is %v, want %v (%v)", i, k, want, kinds)
		}
	}
}

func TestTemplateInterval(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	g, err := NewGenerator(Config{Version: 9, TemplateInterval: 10 * time.Second, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if g.Config().TemplateEvery != 0 {
		t.Fatalf("TemplateEvery %d", g.Config().TemplateEvery)
	}
	var kinds []PacketKind
	for range 5 {
		_, k, _ := g.Next()
		kinds = append(kinds, k)
		now = now.Add(4 * time.Second)
	}
	want := []PacketKind{PacketTemplate, PacketData, PacketData, PacketTemplate, PacketData}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("kinds %v, want %v", kinds, want)
		}
	}
}

func TestDeterminism(t *testing.T) {
	for _, v := range []int{5, 9, 10} {
		cfg := Config{Version: v, Flows: 2000, Seed: 42, Clock: fixedClock}
		if v != 5 {
			cfg.IPv6Share = 0.2
		}
		_, a, _ := collect(t, cfg)
		_, b, _ := collect(t, cfg)
		if len(a) != len(b) {
			t.Fatalf("v%d: %d vs %d packets", v, len(a), len(b))
		}
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("v%d: packet %d differs", v, i)
			}
		}
		cfg.Seed = 43
		_, c, _ := collect(t, cfg)
		same := 0
		for i := range a {
			if bytes.Equal(a[i], c[i]) {
				same++
			}
		}
		if same > 1 { // at most the template packet
			t.Errorf("v%d: seed 43 gives %d equal packets", v, same)
		}
	}
}

// TestContent checks the shape of the traffic: bounded 5-tuples, protocol
// shares, heavy-tailed packets per flow and byte sizes.
func TestContent(t *testing.T) {
	cfg := Config{Version: 10, Flows: 200_000, Seed: 3, HostPool: 500, Clock: fixedClock, TemplateEvery: 1 << 30}
	_, pkts, _ := collect(t, cfg)
	p := newParser()
	type tuple struct {
		src, dst     [4]byte
		sport, dport uint64
		proto        uint64
	}
	tuples := map[tuple]int{}
	protos := map[uint64]int{}
	var maxPk, n uint64
	for _, b := range pkts {
		pk, err := p.parse(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range pk.records {
			n++
			var tp tuple
			copy(tp.src[:], r[8])
			copy(tp.dst[:], r[12])
			tp.sport, tp.dport, tp.proto = r.uint(7), r.uint(11), r.uint(4)
			tuples[tp]++
			protos[tp.proto]++
			pc, bc := r.uint(2), r.uint(1)
			maxPk = max(maxPk, pc)
			if pc < 1 || pc > 10000 || bc < 40*pc || bc > 1500*pc {
				t.Fatalf("packets %d bytes %d", pc, bc)
			}
			if r[8][0] != 10 && r[12][0] != 10 {
				t.Fatalf("no client address in %v -> %v", r[8], r[12])
			}
		}
	}
	if len(tuples) > cfg.HostPool*20 || len(tuples) < cfg.HostPool {
		t.Errorf("%d distinct 5-tuples for %d hosts", len(tuples), cfg.HostPool)
	}
	tcp := float64(protos[6]) / float64(n)
	udp := float64(protos[17]) / float64(n)
	icmp := float64(protos[1]) / float64(n)
	if tcp < 0.75 || tcp > 0.85 || udp < 0.13 || udp > 0.21 || icmp < 0.01 || icmp > 0.05 {
		t.Errorf("shares tcp %.3f udp %.3f icmp %.3f", tcp, udp, icmp)
	}
	if maxPk < 1000 {
		t.Errorf("max packets per flow %d: not heavy-tailed", maxPk)
	}
	t.Logf("%d flows, %d distinct 5-tuples, tcp %.3f udp %.3f icmp %.3f, max packets %d", n, len(tuples), tcp, udp, icmp, maxPk)
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		cfg   Config
		field string
	}{
		{Config{Version: 8}, "Version"},
		{Config{Version: 5, FlowsPerPacket: 31}, "FlowsPerPacket"},
		{Config{Version: 9, FlowsPerPacket: 10000}, "FlowsPerPacket"},
		{Config{Version: 5, IPv6Share: 0.1}, "IPv6Share"},
		{Config{Version: 9, IPv6Share: 1.5}, "IPv6Share"},
		{Config{Version: 5, SamplingRate: 20000}, "SamplingRate"},
		{Config{Version: 10, Exporters: []string{"nope"}}, "Exporters"},
		{Config{Version: 10, TemplateEvery: -1}, "TemplateEvery"},
	}
	for _, c := range cases {
		_, err := NewGenerator(c.cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("%+v: error %v, want field %s", c.cfg, err, c.field)
		}
	}
	if _, err := Run(context.Background(), Config{Version: 9}); err == nil {
		t.Error("Run without target succeeded")
	}
}

func TestNextDoesNotAllocate(t *testing.T) {
	for _, v := range []int{5, 9, 10} {
		cfg := Config{Version: v, Clock: fixedClock, SamplingRate: 10}
		if v != 5 {
			cfg.IPv6Share = 0.1
		}
		g, err := NewGenerator(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(1000, func() { g.Next() }); a != 0 {
			t.Errorf("v%d: %.1f allocations per Next", v, a)
		}
	}
}

// sink is a UDP listener that keeps every datagram it receives.
type sink struct {
	conn *net.UDPConn
	mu   sync.Mutex
	pkts [][]byte
	n    int
	done chan struct{}
}

func newSink(t testing.TB, keep bool) *sink {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(64 << 20)
	s := &sink{conn: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.n++
			if keep {
				s.pkts = append(s.pkts, bytes.Clone(buf[:n]))
			} else {
				s.pkts = append(s.pkts[:0], nil)
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *sink) close() { s.conn.Close(); <-s.done }

func TestRunLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 100,000 flows over loopback")
	}
	s := newSink(t, true)
	defer s.close()
	cfg := Config{
		Target: s.conn.LocalAddr().String(), Version: 10, Flows: 100_000, Rate: 500_000,
		SourceIDs: 2, SamplingRate: 10, IPv6Share: 0.1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	tot, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	if tot.Flows != cfg.Flows {
		t.Fatalf("sent %d flows, want %d (%v)", tot.Flows, cfg.Flows, ctx.Err())
	}
	wantPackets := (cfg.Flows+29)/30 + tot.TemplatePackets
	if tot.Packets != wantPackets || tot.FlowPackets < tot.Flows || tot.FlowBytes < 40*tot.FlowPackets {
		t.Fatalf("inconsistent totals %+v", tot)
	}
	t.Logf("sent %+v in %v: %.0f flows/s", tot, el, float64(tot.Flows)/el.Seconds())
	// Wait for the datagrams, bounded in time.
	for end := time.Now().Add(5 * time.Second); s.count() < int(tot.Packets) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	pkts := s.pkts
	s.mu.Unlock()
	if len(pkts) != int(tot.Packets) {
		t.Skipf("received %d of %d datagrams: loss on loopback, totals not compared", len(pkts), tot.Packets)
	}
	p := newParser()
	var got Totals
	for _, b := range pkts {
		pk, err := p.parse(b)
		if err != nil {
			t.Fatal(err)
		}
		kind := PacketData
		if len(pk.templates) > 0 {
			kind = PacketTemplate
		}
		if pk.unknownSet > 0 {
			t.Fatal("data before template")
		}
		f, pc, bc := sumRecords(pk.records)
		got.Add(PacketInfo{Kind: kind, Flows: int(f), FlowPackets: pc, FlowBytes: bc})
	}
	if got != tot {
		t.Errorf("received %+v, sent %+v", got, tot)
	}
}

func TestRunDurationAndCancel(t *testing.T) {
	s := newSink(t, false)
	defer s.close()
	start := time.Now()
	tot, err := Run(context.Background(), Config{Target: s.conn.LocalAddr().String(), Version: 9, Duration: 200 * time.Millisecond, Rate: 10000})
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	if el > 2*time.Second || tot.Flows < 1000 || tot.Flows > 3500 {
		t.Errorf("200ms at 10000 flows/s: %+v in %v", tot, el)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	tot, err = Run(ctx, Config{Target: s.conn.LocalAddr().String(), Version: 5, Rate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if tot.Flows == 0 || tot.Flows > 500 {
		t.Errorf("100ms at 1000 flows/s: %+v", tot)
	}
}

func TestRunExporters(t *testing.T) {
	s := newSink(t, true)
	defer s.close()
	// Binding to 127.0.0.2 works on Linux loopback; skip where it does not.
	if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)}); err != nil {
		t.Skip("cannot bind 127.0.0.3:", err)
	} else {
		c.Close()
	}
	tot, err := Run(context.Background(), Config{Target: s.conn.LocalAddr().String(), Version: 9, Flows: 600, Exporters: []string{"127.0.0.2", "127.0.0.3"}})
	if err != nil {
		t.Fatal(err)
	}
	if tot.Flows != 600 || tot.TemplatePackets != 2 {
		t.Errorf("totals %+v", tot)
	}
}

func benchGenerator(b *testing.B, v int) {
	g, err := NewGenerator(Config{Version: v, Seed: 1, SamplingRate: 10})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var bytes int
	for b.Loop() {
		p, _, _ := g.Next()
		bytes += len(p)
	}
	b.ReportMetric(float64(g.Totals().Flows)/b.Elapsed().Seconds(), "flows/s")
	b.SetBytes(int64(bytes / max(1, b.N)))
}

// BenchmarkGeneratorV5 measures building NetFlow v5 packets.
func BenchmarkGeneratorV5(b *testing.B) { benchGenerator(b, 5) }

// BenchmarkGeneratorV9 measures building NetFlow v9 packets.
func BenchmarkGeneratorV9(b *testing.B) { benchGenerator(b, 9) }

// BenchmarkGeneratorIPFIX measures building IPFIX packets.
func BenchmarkGeneratorIPFIX(b *testing.B) { benchGenerator(b, 10) }

// BenchmarkRunLoopback measures sending to a loopback UDP sink as fast as
// possible; the reported flows/s is the send rate.
func BenchmarkRunLoopback(b *testing.B) {
	s := newSink(b, false)
	defer s.close()
	var flows, packets uint64
	b.ReportAllocs()
	for b.Loop() {
		tot, err := Run(context.Background(), Config{Target: s.conn.LocalAddr().String(), Version: 9, Flows: 300_000})
		if err != nil {
			b.Fatal(err)
		}
		flows += tot.Flows
		packets += tot.Packets
	}
	b.ReportMetric(float64(flows)/b.Elapsed().Seconds(), "flows/s")
	time.Sleep(50 * time.Millisecond)
	b.ReportMetric(100*float64(s.count())/float64(packets), "%received")
}
