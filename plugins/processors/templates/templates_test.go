package templates

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/flowgen"
)

func newTemplates(t *testing.T, dir string) *Templates {
	t.Helper()
	p := &Templates{File: "templates.json", SaveEvery: core.Duration(time.Hour), PendingMax: 64,
		PendingMaxAge: core.Duration(time.Minute), TemplateTTL: core.Duration(time.Hour)}
	if err := p.Init(core.NewEnv("templates", dir)); err != nil {
		t.Fatal(err)
	}
	return p
}

// packets returns flowgen's datagrams: templates first, then data.
func packets(t *testing.T, flows uint64) (tmpl, data [][]byte, wantPackets uint64) {
	t.Helper()
	g, err := flowgen.NewGenerator(flowgen.Config{Version: 10, Flows: flows, Seed: 9, SourceIDs: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10_000; i++ {
		pkt, kind, _ := g.Next()
		if kind == flowgen.PacketNone {
			break
		}
		c := append([]byte(nil), pkt...)
		if kind == flowgen.PacketTemplate {
			tmpl = append(tmpl, c)
		} else {
			data = append(data, c)
			wantPackets += g.Last().FlowPackets
		}
	}
	return
}

func process(t *testing.T, p *Templates, pkts [][]byte) (sum uint64) {
	t.Helper()
	in := core.NewBatch()
	for _, d := range pkts {
		in.Packets = append(in.Packets, core.Packet{Data: d, Exporter: netip.MustParseAddrPort("192.0.2.7:2055"), Received: time.Now().UnixNano()})
	}
	err := p.Process(context.Background(), in, func(b *core.Batch) {
		for _, r := range b.Records {
			sum += r.Packets
		}
		b.Release()
	})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestSavedTemplatesDecodeAfterRestart: Flush saves the templates; a new
// processor over the same data_dir decodes data without a template packet.
func TestSavedTemplatesDecodeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	tmpl, data, want := packets(t, 600)
	p := newTemplates(t, dir)
	process(t, p, tmpl)
	if err := p.Flush(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "templates.json")); err != nil {
		t.Fatalf("templates not saved: %v", err)
	}
	restarted := newTemplates(t, dir)
	if got := process(t, restarted, data); got != want {
		t.Fatalf("after restart decoded %d packets' worth, want %d", got, want)
	}
}

// TestCorruptTemplateFileIsAnError: a foreign file is named, never replaced silently.
func TestCorruptTemplateFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "templates.json")
	if err := os.WriteFile(path, []byte("this is not a template file"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Templates{File: "templates.json", SaveEvery: 1, PendingMax: 1, PendingMaxAge: 1}
	err := p.Init(core.NewEnv("templates", dir))
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Init over a corrupt file: err = %v; want an error naming %s", err, path)
	}
}

// TestMalformedPacketsCountedAndSkipped: a bad datagram in a batch does not
// stop the good ones after it.
func TestMalformedPacketsCountedAndSkipped(t *testing.T) {
	tmpl, data, want := packets(t, 300)
	p := newTemplates(t, t.TempDir())
	process(t, p, tmpl)
	var mixed [][]byte
	for _, d := range data {
		mixed = append(mixed, []byte{0, 10, 0, 3}, d[:10], d)
	}
	if got := process(t, p, mixed); got != want {
		t.Fatalf("decoded %d packets' worth with garbage interleaved, want %d", got, want)
	}
	if got := counterValue(p.m.malformed); got != float64(2*len(data)) {
		t.Fatalf("malformed counted %v, want %d", got, 2*len(data))
	}
}
