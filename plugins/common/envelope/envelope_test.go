package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/plugins/common/netflow"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, exp := range []string{"192.0.2.7:2055", "[2001:db8::1]:4739", "[::ffff:10.1.2.3]:9"} {
		ap := netip.MustParseAddrPort(exp)
		payload := []byte{0, 9, 1, 2}
		dg := append(AppendHeader(nil, TypePacket, ap, 12345678901), payload...)
		h, p, err := Parse(dg)
		if err != nil {
			t.Fatalf("%s: %v", exp, err)
		}
		want := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if h.Type != TypePacket || h.Exporter != want || h.Received != 12345678901 || !bytes.Equal(p, payload) {
			t.Errorf("%s: parsed %+v payload %x", exp, h, p)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := AppendHeader(nil, TypePacket, netip.MustParseAddrPort("192.0.2.1:1"), 1)
	cases := map[string][]byte{
		"netflow":     {0, 9, 0, 1},
		"short":       good[:10],
		"version":     append([]byte{0xF1, 0x0E, 2}, good[3:]...),
		"type":        append([]byte{0xF1, 0x0E, 1, 9}, good[4:]...),
		"family":      append([]byte{0xF1, 0x0E, 1, 1, 5}, good[5:]...),
		"no exporter": AppendHeader(nil, TypePacket, netip.AddrPort{}, 1),
		"long header": append(append([]byte{}, good[:5]...), append([]byte{200}, good[6:]...)...),
	}
	for name, dg := range cases {
		_, _, err := Parse(dg)
		if err == nil {
			t.Errorf("%s: parsed", name)
			continue
		}
		if name == "netflow" && !errors.Is(err, ErrNotEnvelope) {
			t.Errorf("netflow: err %v, want ErrNotEnvelope", err)
		}
		if name != "netflow" && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

func TestHeaderDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 64)
	ap := netip.MustParseAddrPort("192.0.2.7:2055")
	if n := testing.AllocsPerRun(100, func() { _ = AppendHeader(buf[:0], TypePacket, ap, 1) }); n != 0 {
		t.Errorf("AppendHeader allocates %v times", n)
	}
}

// generated returns flowgen datagrams with options templates (sampling).
func generated(t testing.TB, version int) (tmpl, data [][]byte) {
	g, err := flowgen.NewGenerator(flowgen.Config{Version: version, Flows: 3000, Seed: 4, SourceIDs: 3, SamplingRate: 10, IPv6Share: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10_000; i++ {
		pkt, kind, _ := g.Next()
		if kind == flowgen.PacketNone {
			break
		}
		c := bytes.Clone(pkt)
		if kind == flowgen.PacketTemplate {
			tmpl = append(tmpl, c)
		} else {
			data = append(data, c)
		}
	}
	return tmpl, data
}

func sorted(s []netflow.TemplateSet) []netflow.TemplateSet {
	for i := range s {
		s[i].Learned = time.Time{}
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].Domain != s[j].Domain {
			return s[i].Domain < s[j].Domain
		}
		return s[i].ID < s[j].ID
	})
	return s
}

func decodeAll(d *netflow.Decoder, exp netip.AddrPort, pkts [][]byte) uint64 {
	b := core.NewBatch()
	defer b.Release()
	for _, p := range pkts {
		_, _ = d.Decode(core.Packet{Data: p, Exporter: exp, Received: 1}, b)
	}
	var n uint64
	for _, r := range b.Records {
		n += r.Packets
	}
	return n
}

// TestTemplatesTravel: templates learned by one decoder, shared as template
// envelopes and re-encoded as export datagrams, teach another decoder the
// same templates, and it decodes the data the same.
func TestTemplatesTravel(t *testing.T) {
	for _, v := range []int{9, 10} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			tmpl, data := generated(t, v)
			exp := netip.MustParseAddrPort("192.0.2.9:3000")
			a := netflow.NewDecoder(netflow.DecoderConfig{})
			want := decodeAll(a, exp, append(append([][]byte{}, tmpl...), data...))
			dgs, err := EncodeTemplates(a.Templates())
			if err != nil {
				t.Fatal(err)
			}
			var sets []netflow.TemplateSet
			for _, dg := range dgs {
				h, p, err := Parse(dg)
				if err != nil || h.Type != TypeTemplates {
					t.Fatalf("parse: %v %+v", err, h)
				}
				s, err := DecodeTemplates(p)
				if err != nil {
					t.Fatal(err)
				}
				sets = append(sets, s...)
			}
			b := netflow.NewDecoder(netflow.DecoderConfig{})
			var pkts [][]byte
			for _, g := range Group(sets) {
				pkts = append(pkts, AppendTemplatePacket(nil, g, time.Now()))
			}
			decodeAll(b, netip.AddrPortFrom(sets[0].Exporter, 1), pkts)
			if got, w := sorted(b.Templates()), sorted(a.Templates()); fmt.Sprint(got) != fmt.Sprint(w) {
				t.Fatalf("re-encoded templates differ:\n got %v\nwant %v", got, w)
			}
			if got := decodeAll(b, exp, data); got != want {
				t.Fatalf("decoded %d packets with shared templates, want %d", got, want)
			}
		})
	}
}

// TestTemplatesOnly: the template part of a mixed datagram teaches a decoder
// the templates; Scan tells the kinds apart.
func TestTemplatesOnly(t *testing.T) {
	for _, v := range []int{9, 10} {
		tmpl, data := generated(t, v)
		for _, p := range tmpl {
			if k, err := Scan(p); err != nil || k&KindTemplates == 0 {
				t.Fatalf("v%d template datagram: kind %v err %v", v, k, err)
			}
		}
		for _, p := range data {
			if k, err := Scan(p); err != nil || k != KindData {
				t.Fatalf("v%d data datagram: kind %v err %v", v, k, err)
			}
			if got := AppendSets(nil, p, templatesOnly); len(got) != 0 {
				t.Fatalf("templates-only of a data datagram: %d bytes", len(got))
			}
		}
		// Glue template sets in front of a data datagram: a mixed datagram.
		hl := v9HeaderLen
		if v == 10 {
			hl = ipfixHeaderLen
		}
		var mixed []byte
		mixed = append(mixed, tmpl[0]...)
		mixed = append(mixed, data[0][hl:]...)
		tmpl = tmpl[:1]
		if v == 10 {
			mixed[2], mixed[3] = byte(len(mixed)>>8), byte(len(mixed))
		}
		if k, err := Scan(mixed); err != nil || k != KindData|KindTemplates {
			t.Fatalf("v%d mixed: kind %v err %v", v, k, err)
		}
		only := AppendSets(nil, mixed, templatesOnly)
		exp := netip.MustParseAddrPort("192.0.2.1:5")
		a, b := netflow.NewDecoder(netflow.DecoderConfig{}), netflow.NewDecoder(netflow.DecoderConfig{})
		decodeAll(a, exp, tmpl)
		if n := decodeAll(b, exp, [][]byte{only}); n != 0 {
			t.Fatalf("v%d: templates-only datagram decoded %d packets", v, n)
		}
		if got, w := sorted(b.Templates()), sorted(a.Templates()); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("v%d: templates-only taught\n%v\nwant\n%v", v, got, w)
		}
		// Template records one by one rebuild the same store.
		var recs []TemplateRecord
		TemplateRecords(mixed, func(r TemplateRecord) { recs = append(recs, r) })
		c := netflow.NewDecoder(netflow.DecoderConfig{})
		for _, r := range recs {
			dg := AppendSet(append([]byte{}, mixed[:hl]...), r.SetID, r.Record)
			FixHeader(dg, 1)
			decodeAll(c, exp, [][]byte{dg})
		}
		if got, w := sorted(c.Templates()), sorted(a.Templates()); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("v%d: template records taught\n%v\nwant\n%v", v, got, w)
		}
	}
	if _, err := Scan([]byte("junk junk junk junk junk")); err == nil {
		t.Error("Scan accepted junk")
	}
}

func TestScanDoesNotAllocate(t *testing.T) {
	_, data := generated(t, 10)
	if n := testing.AllocsPerRun(100, func() { _, _ = Scan(data[0]) }); n != 0 {
		t.Errorf("Scan allocates %v times", n)
	}
}

func templatesOnly(_ uint16, template bool) bool { return template }

// TestSealVerify: a sealed envelope parses as before (payload without the
// tag) and verifies within the window; a changed byte, another secret, an
// unsealed envelope and an old one do not.
func TestSealVerify(t *testing.T) {
	s := NewSigner("a-secret-of-16-bytes+")
	now := time.Now().UnixNano()
	exp := netip.MustParseAddrPort("192.0.2.7:2055")
	dg := s.Seal(append(AppendHeader(nil, TypePacket, exp, now), 0, 9, 1, 2))
	h, payload, err := Parse(dg)
	if err != nil || !h.Authenticated || h.Type != TypePacket || h.Exporter != exp || string(payload) != "\x00\x09\x01\x02" {
		t.Fatalf("parse %+v %x %v", h, payload, err)
	}
	if err := s.Verify(dg, now+int64(time.Second), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(dg, now+int64(2*time.Minute), time.Minute); err == nil || !strings.Contains(err.Error(), "window") {
		t.Fatalf("an envelope two minutes old: %v", err)
	}
	bad := append([]byte(nil), dg...)
	bad[17]++ // another exporter address
	if err := s.Verify(bad, now, time.Minute); err == nil {
		t.Fatal("a changed exporter verified")
	}
	if err := NewSigner("another-secret-of-16").Verify(dg, now, time.Minute); err == nil {
		t.Fatal("another secret verified")
	}
	plain := append(AppendHeader(nil, TypePacket, exp, now), 0, 9, 1, 2)
	if err := s.Verify(plain, now, time.Minute); err == nil {
		t.Fatal("an unsealed envelope verified")
	}
	if n := testing.AllocsPerRun(100, func() {
		buf := make([]byte, 0, 64)
		_ = s.Verify(s.Seal(append(AppendHeader(buf, TypeProbe, netip.AddrPort{}, now), 1)), now, time.Minute)
	}); n > 1 {
		t.Errorf("%.0f allocations per seal and verify", n)
	}
}
