package tee

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/plugins/common/envelope"
)

// sink is a receiver: a UDP socket that keeps what it gets and, when
// answer is set, answers probes like inputs.replica.
type sink struct {
	conn   *net.UDPConn
	answer bool
	mu     sync.Mutex
	got    []envelope.Header
	data   [][]byte
	done   chan struct{}
}

func newSink(t testing.TB, answer bool) *sink {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(16 << 20)
	s := &sink{conn: c, answer: answer, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			h, p, err := envelope.Parse(buf[:n])
			if err == nil && h.Type == envelope.TypeProbe {
				if s.answer {
					_, _ = c.WriteToUDPAddrPort(envelope.AppendHeader(nil, envelope.TypeProbeReply, netip.AddrPort{}, 0), from)
				}
				continue
			}
			if err != nil {
				h, p = envelope.Header{Exporter: from}, buf[:n]
			}
			s.mu.Lock()
			s.got = append(s.got, h)
			s.data = append(s.data, bytes.Clone(p))
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-s.done })
	return s
}

func (s *sink) addr() string { return s.conn.LocalAddr().String() }

func (s *sink) count() (data, templates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.data {
		k, _ := envelope.Scan(d)
		if k&envelope.KindData != 0 {
			data++
		}
		if k&envelope.KindTemplates != 0 {
			templates++
		}
	}
	return
}

func newTee(t testing.TB, liveness string, pools ...Pool) *Tee {
	t.Helper()
	tee := &Tee{Liveness: liveness, ProbeInterval: core.Duration(50 * time.Millisecond), ProbeTimeout: core.Duration(200 * time.Millisecond), WriteBuffer: 8 << 20, Pools: pools}
	if err := tee.Init(core.NewEnv("tee", "")); err != nil {
		t.Fatal(err)
	}
	if err := tee.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tee.Close(context.Background()) })
	return tee
}

// traffic returns flowgen datagrams (templates first) from the exporters.
func traffic(t testing.TB, version int, flows uint64, exporters ...string) *core.Batch {
	g, err := flowgen.NewGenerator(flowgen.Config{Version: version, Flows: flows, Seed: 1, SourceIDs: 2})
	if err != nil {
		t.Fatal(err)
	}
	b := core.NewBatch()
	b.Arena = make([]byte, 0, 64<<20)
	for i := 0; ; i++ {
		pkt, kind, _ := g.Next()
		if kind == flowgen.PacketNone {
			break
		}
		off := len(b.Arena)
		b.Arena = append(b.Arena, pkt...)
		exp := netip.MustParseAddrPort(exporters[i%len(exporters)] + ":2055")
		b.Packets = append(b.Packets, core.Packet{Data: b.Arena[off:], Exporter: exp, Received: 42})
	}
	return b
}

func wait(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRoundRobinTemplatesToAll(t *testing.T) {
	s := []*sink{newSink(t, true), newSink(t, true), newSink(t, true)}
	tee := newTee(t, "probe", Pool{ID: 1, Receivers: []string{s[0].addr(), s[1].addr(), s[2].addr()}, Balance: "rr"})
	b := traffic(t, 9, 9000, "192.0.2.1")
	var data, tmpl int
	for _, p := range b.Packets {
		k, _ := envelope.Scan(p.Data)
		if k&envelope.KindData != 0 {
			data++
		} else {
			tmpl++
		}
	}
	if err := tee.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	wait(t, func() bool {
		n := 0
		for _, x := range s {
			d, _ := x.count()
			n += d
		}
		return n == data
	})
	for i, x := range s {
		d, tm := x.count()
		if d != data/3 || tm != tmpl {
			t.Errorf("receiver %d: %d data datagrams (want %d), %d template datagrams (want %d)", i, d, data/3, tm, tmpl)
		}
		x.mu.Lock()
		for _, h := range x.got {
			if h.Type != envelope.TypePacket || h.Exporter.String() != "192.0.2.1:2055" || h.Received != 42 {
				t.Fatalf("receiver %d: envelope %+v; want the exporter 192.0.2.1:2055 and its receive time", i, h)
			}
		}
		x.mu.Unlock()
	}
}

// TestMixedDatagram: a datagram with templates and data goes whole to the
// picked receiver and as templates only to the others.
func TestMixedDatagram(t *testing.T) {
	s := []*sink{newSink(t, true), newSink(t, true)}
	tee := newTee(t, "none", Pool{ID: 1, Receivers: []string{s[0].addr(), s[1].addr()}})
	b := traffic(t, 10, 300, "192.0.2.1")
	tmpl, data := b.Packets[0].Data, b.Packets[len(b.Packets)-1].Data
	mixed := append(bytes.Clone(tmpl), data[16:]...)
	mixed[2], mixed[3] = byte(len(mixed)>>8), byte(len(mixed))
	in := core.NewBatch()
	in.Packets = append(in.Packets, core.Packet{Data: mixed, Exporter: netip.MustParseAddrPort("192.0.2.1:1")})
	_ = tee.Write(context.Background(), in)
	wait(t, func() bool { _, a := s[0].count(); _, b := s[1].count(); return a+b == 2 })
	d0, _ := s[0].count()
	d1, _ := s[1].count()
	if d0 != 1 || d1 != 0 {
		t.Fatalf("data went to %d and %d receivers; want the first only", d0, d1)
	}
	s[1].mu.Lock()
	defer s[1].mu.Unlock()
	if !bytes.Equal(s[1].data[0], envelope.AppendSets(nil, mixed, func(_ uint16, tpl bool) bool { return tpl })) {
		t.Fatal("second receiver did not get the template part")
	}
}

func TestHashExporterAndFilter(t *testing.T) {
	s := []*sink{newSink(t, true), newSink(t, true), newSink(t, true), newSink(t, true)}
	tee := newTee(t, "none",
		Pool{ID: 1, Receivers: []string{s[0].addr(), s[1].addr(), s[2].addr()}, Balance: "hash-exporter", Exporters: []string{"192.0.2.0/24"}},
		Pool{ID: 2, Receivers: []string{s[3].addr()}, Balance: "all", Exporters: []string{"198.51.100.7"}},
	)
	exps := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "198.51.100.7", "203.0.113.1"}
	b := traffic(t, 9, 30000, exps...)
	_ = tee.Write(context.Background(), b)
	time.Sleep(300 * time.Millisecond)
	owner := map[netip.Addr]int{}
	for i, x := range s {
		x.mu.Lock()
		for j, h := range x.got {
			if k, _ := envelope.Scan(x.data[j]); k&envelope.KindData == 0 {
				continue
			}
			a := h.Exporter.Addr()
			if i == 3 {
				if a.String() != "198.51.100.7" {
					t.Errorf("pool 2 got exporter %s", a)
				}
				continue
			}
			if o, ok := owner[a]; ok && o != i {
				t.Errorf("exporter %s on receivers %d and %d", a, o, i)
			}
			owner[a] = i
		}
		x.mu.Unlock()
	}
	if len(owner) != 5 {
		t.Errorf("pool 1 saw exporters %v; want the 5 of 192.0.2.0/24", owner)
	}
	if v := counter(tee.m.filtered); v == 0 {
		t.Error("the exporter outside every pool was not counted")
	}
}

// TestLiveness: a receiver that closes its socket leaves the rotation (ICMP
// port unreachable); one that answers again comes back and first gets the
// cached templates.
func TestLiveness(t *testing.T) {
	a, gone := newSink(t, true), newSink(t, true)
	tee := newTee(t, "probe", Pool{ID: 1, Receivers: []string{a.addr(), gone.addr()}})
	b := traffic(t, 9, 6000, "192.0.2.1")
	addr := gone.addr()
	gone.conn.Close()
	<-gone.done
	r := tee.recvs[1]
	wait(t, func() bool { return !r.up.Load() })
	_ = tee.Write(context.Background(), b)
	wait(t, func() bool { d, _ := a.count(); return d > 0 })
	time.Sleep(100 * time.Millisecond)
	// Everything went to the live receiver.
	var data int
	for _, p := range b.Packets {
		if k, _ := envelope.Scan(p.Data); k&envelope.KindData != 0 {
			data++
		}
	}
	wait(t, func() bool { d, _ := a.count(); return d == data })

	// The receiver returns on the same port.
	ua, _ := net.ResolveUDPAddr("udp", addr)
	back := newSinkAt(t, ua)
	wait(t, func() bool { return r.up.Load() })
	one := core.NewBatch()
	one.Packets = append(one.Packets, b.Packets[len(b.Packets)-1], b.Packets[len(b.Packets)-2])
	_ = tee.Write(context.Background(), one)
	wait(t, func() bool { d, _ := back.count(); return d == 1 })
	if _, tm := back.count(); tm == 0 {
		t.Fatal("returning receiver did not get the cached templates first")
	}
}

func newSinkAt(t *testing.T, ua *net.UDPAddr) *sink {
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	s := &sink{conn: c, answer: true, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			h, p, err := envelope.Parse(buf[:n])
			if err != nil {
				continue
			}
			if h.Type == envelope.TypeProbe {
				_, _ = c.WriteToUDPAddrPort(envelope.AppendHeader(nil, envelope.TypeProbeReply, netip.AddrPort{}, 0), from)
				continue
			}
			s.mu.Lock()
			s.got = append(s.got, h)
			s.data = append(s.data, bytes.Clone(p))
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-s.done })
	return s
}

// quiet is a receiver socket nobody reads (no allocations in the test).
func quiet(t testing.TB) string {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().String()
}

func TestWriteDoesNotAllocate(t *testing.T) {
	tee := newTee(t, "none", Pool{ID: 1, Receivers: []string{quiet(t), quiet(t)}, Balance: "rr"})
	b := traffic(t, 10, 3000, "192.0.2.1", "192.0.2.2")
	_ = tee.Write(context.Background(), b) // learn the templates
	data := core.NewBatch()
	for _, p := range b.Packets {
		if k, _ := envelope.Scan(p.Data); k == envelope.KindData {
			data.Packets = append(data.Packets, p)
		}
	}
	if n := testing.AllocsPerRun(20, func() { _ = tee.Write(context.Background(), data) }); n != 0 {
		t.Errorf("Write of %d data datagrams allocates %v times", len(data.Packets), n)
	}
}

func TestBadConfig(t *testing.T) {
	for name, tee := range map[string]*Tee{
		"no pool":      {Liveness: "none"},
		"balance":      {Liveness: "none", Pools: []Pool{{ID: 1, Receivers: []string{"127.0.0.1:1"}, Balance: "random"}}},
		"no receivers": {Liveness: "none", Pools: []Pool{{ID: 1}}},
		"receiver":     {Liveness: "none", Pools: []Pool{{ID: 1, Receivers: []string{"nowhere"}}}},
		"port":         {Liveness: "none", Pools: []Pool{{ID: 1, Receivers: []string{"127.0.0.1:70000"}}}},
		"exporter":     {Liveness: "none", Pools: []Pool{{ID: 1, Receivers: []string{"127.0.0.1:1"}, Exporters: []string{"x"}}}},
		"duplicate":    {Liveness: "none", Pools: []Pool{{ID: 1, Receivers: []string{"127.0.0.1:1"}}, {ID: 1, Receivers: []string{"127.0.0.1:2"}}}},
		"liveness":     {Liveness: "icmp", Pools: []Pool{{ID: 1, Receivers: []string{"127.0.0.1:1"}}}},
	} {
		if err := tee.Init(core.NewEnv("tee", "")); err == nil {
			t.Errorf("%s: Init succeeded", name)
		}
	}
}

// TestTransparentNeedsRawSocket: as root Init opens the raw socket; without
// root it says what it needs.
func TestTransparentNeedsRawSocket(t *testing.T) {
	tee := &Tee{Transparent: true, Liveness: "none", Pools: []Pool{{ID: 1, Receivers: []string{"127.0.0.1:9"}}}}
	err := tee.Init(core.NewEnv("tee", ""))
	if os.Geteuid() == 0 {
		if err != nil {
			t.Fatalf("as root: %v", err)
		}
		_ = tee.Close(context.Background())
		return
	}
	if err == nil || !strings.Contains(err.Error(), "CAP_NET_RAW") {
		t.Fatalf("without root: err = %v; want one naming root or CAP_NET_RAW", err)
	}
}
