package templates

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/plugins/common/envelope"
	"github.com/flowline/flowline/plugins/common/netflow"
)

// TestShareTo: templates learned from datagrams are sent to share_to as
// template envelopes; a peer that installs them decodes the data; the
// peer's echo of the same templates is not shared again.
func TestShareTo(t *testing.T) {
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	p := &Templates{SaveEvery: core.Duration(time.Hour), PendingMax: 64, PendingMaxAge: core.Duration(time.Minute),
		ShareTo: []string{peer.LocalAddr().String()}}
	if err := p.Init(core.NewEnv("templates", t.TempDir())); err != nil {
		t.Fatal(err)
	}
	tmpl, data, want := packets(t, 600)
	process(t, p, tmpl)

	var sets []netflow.TemplateSet
	_ = peer.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65536)
	for len(sets) < len(p.dec.Templates()) {
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatalf("got %d shared templates, want %d: %v", len(sets), len(p.dec.Templates()), err)
		}
		h, payload, err := envelope.Parse(buf[:n])
		if err != nil || h.Type != envelope.TypeTemplates {
			t.Fatalf("shared datagram: %+v %v", h, err)
		}
		s, err := envelope.DecodeTemplates(payload)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, s...)
	}
	// The peer: templates arrive as re-encoded datagrams of the exporter.
	other := newTemplates(t, t.TempDir())
	var pkts [][]byte
	for _, g := range envelope.Group(sets) {
		pkts = append(pkts, envelope.AppendTemplatePacket(nil, g, time.Now()))
	}
	process(t, other, pkts)
	if got := process(t, other, data); got != want {
		t.Fatalf("peer decoded %d packets with shared templates, want %d", got, want)
	}
	// The echo (same templates back) is not shared again.
	before := counterValue(p.share.shared)
	in := core.NewBatch()
	for _, d := range pkts {
		in.Packets = append(in.Packets, core.Packet{Data: d, Exporter: netip.MustParseAddrPort("192.0.2.7:0")})
	}
	_ = p.Process(context.Background(), in, func(b *core.Batch) { b.Release() })
	if after := counterValue(p.share.shared); after != before {
		t.Fatalf("echoed templates shared again (%v -> %v)", before, after)
	}
	if err := p.Flush(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}
