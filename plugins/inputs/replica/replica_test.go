package replica

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/plugins/common/envelope"
	"github.com/flowline/flowline/plugins/common/netflow"
)

func newInput(t *testing.T) *Replica {
	t.Helper()
	r := &Replica{Address: "127.0.0.1:0", Sockets: 1, ReadBuffer: 1 << 20, BatchPackets: 8, FlushInterval: core.Duration(20 * time.Millisecond)}
	if err := r.Init(core.NewEnv("replica", "")); err != nil {
		t.Fatal(err)
	}
	if err := r.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// run starts the input and collects what it emits; stop returns it.
func run(t *testing.T, r *Replica) (stop func() []core.Packet) {
	var mu sync.Mutex
	var got []core.Packet
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Start(ctx, func(b *core.Batch) bool {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range b.Packets {
				p.Data = bytes.Clone(p.Data)
				got = append(got, p)
			}
			b.Release()
			return true
		})
	}()
	return func() []core.Packet {
		time.Sleep(150 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Start did not return")
		}
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

func TestEnvelopesPlainAndJunk(t *testing.T) {
	r := newInput(t)
	stop := run(t, r)
	c, err := net.Dial("udp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	plain := []byte{0, 9, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	exp := netip.MustParseAddrPort("192.0.2.7:2055")
	_, _ = c.Write(append(envelope.AppendHeader(nil, envelope.TypePacket, exp, 777), plain...))
	_, _ = c.Write(plain)
	_, _ = c.Write([]byte("junk, not netflow"))
	_, _ = c.Write(append(envelope.AppendHeader(nil, envelope.TypePacket, exp, 1), "junk inside"...))
	_, _ = c.Write([]byte{0xF1, 0x0E, 9, 9, 9})
	got := stop()
	if len(got) != 2 {
		t.Fatalf("emitted %d packets, want 2: %+v", len(got), got)
	}
	if got[0].Exporter != exp || got[0].Received != 777 || !bytes.Equal(got[0].Data, plain) || got[0].Input != "replica" {
		t.Errorf("enveloped packet emitted as %+v", got[0])
	}
	if got[1].Exporter.String() != c.LocalAddr().String() || !bytes.Equal(got[1].Data, plain) {
		t.Errorf("plain packet emitted as %+v; want from %s", got[1], c.LocalAddr())
	}
	if v := counter(r.m.junk); v != 3 {
		t.Errorf("junk counted %v, want 3", v)
	}
}

func TestProbeAnswered(t *testing.T) {
	r := newInput(t)
	stop := run(t, r)
	defer stop()
	c, err := net.Dial("udp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write(append(envelope.AppendHeader(nil, envelope.TypeProbe, netip.AddrPort{}, 5), "nonce"...))
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	h, p, err := envelope.Parse(buf[:n])
	if err != nil || h.Type != envelope.TypeProbeReply || string(p) != "nonce" {
		t.Fatalf("answer %+v %q %v", h, p, err)
	}
}

// TestSharedTemplatesDecode: a template envelope becomes template datagrams
// of the original exporter, which teach a decoder to decode that exporter's data.
func TestSharedTemplatesDecode(t *testing.T) {
	g, err := flowgen.NewGenerator(flowgen.Config{Version: 10, Flows: 900, Seed: 2, SourceIDs: 3, SamplingRate: 5})
	if err != nil {
		t.Fatal(err)
	}
	exp := netip.MustParseAddrPort("192.0.2.9:4739")
	learner := netflow.NewDecoder(netflow.DecoderConfig{})
	var data []core.Packet
	var want uint64
	for i := 0; i < 1000; i++ {
		pkt, kind, _ := g.Next()
		if kind == flowgen.PacketNone {
			break
		}
		p := core.Packet{Data: bytes.Clone(pkt), Exporter: exp, Received: 1}
		if kind == flowgen.PacketTemplate {
			b := core.NewBatch()
			_, _ = learner.Decode(p, b)
			b.Release()
			continue
		}
		data = append(data, p)
		want += g.Last().FlowPackets
	}
	dgs, err := envelope.EncodeTemplates(learner.Templates())
	if err != nil {
		t.Fatal(err)
	}
	r := newInput(t)
	stop := run(t, r)
	c, err := net.Dial("udp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, dg := range dgs {
		_, _ = c.Write(dg)
	}
	got := stop()
	if len(got) != 3 {
		t.Fatalf("%d template datagrams emitted, want one per observation domain (3)", len(got))
	}
	dec := netflow.NewDecoder(netflow.DecoderConfig{})
	b := core.NewBatch()
	defer b.Release()
	for _, p := range append(got, data...) {
		if p.Exporter.Addr() != exp.Addr() {
			t.Fatalf("template datagram from %s, want the exporter %s", p.Exporter, exp.Addr())
		}
		if _, err := dec.Decode(p, b); err != nil {
			t.Fatal(err)
		}
	}
	var sum uint64
	for _, rec := range b.Records {
		sum += rec.Packets
	}
	if sum != want {
		t.Fatalf("decoded %d packets with shared templates, want %d", sum, want)
	}
}
