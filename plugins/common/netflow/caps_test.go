package netflow

import (
	"net/netip"
	"testing"

	"github.com/flowline/flowline/core"
)

// TestCapsOnSenderState: the exporter, templates-per-exporter and
// changes-per-minute caps refuse (and count) what passes them, while known
// exporters keep decoding; the early-data queue of all exporters stops at
// PendingMaxBytes.
func TestCapsOnSenderState(t *testing.T) {
	d := NewDecoder(DecoderConfig{MaxExporters: 3, MaxTemplatesPerExporter: 4, MaxTemplateChangesPerMinute: 6, PendingMaxBytes: 64 << 10})
	b := core.NewBatch()
	defer b.Release()
	decode := func(exp netip.AddrPort, data []byte) DecodeStats {
		t.Helper()
		st, err := d.Decode(pkt(exp, data), b)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	exp := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 2055)
	}
	// Three exporters fill the exporter cap; a fourth is refused.
	for i := 1; i <= 3; i++ {
		if st := decode(exp(i), v9Packet(1, testSecs, 0, set(0, v9Tpl(256, fiveTuple...)))); st.Refused != 0 {
			t.Fatalf("exporter %d refused", i)
		}
	}
	if st := decode(exp(4), v9Packet(1, testSecs, 0, set(0, v9Tpl(256, fiveTuple...)))); st.Refused != 1 || d.Exporters() != 3 {
		t.Fatalf("a fourth exporter: refused %d, exporters %d", st.Refused, d.Exporters())
	}
	// A known exporter still decodes.
	if st := decode(exp(1), v9Packet(1, testSecs, 0, set(256, fiveTupleRec(1), fiveTupleRec(2)))); st.Records != 2 {
		t.Fatalf("known exporter decoded %d records", st.Records)
	}
	// Templates per exporter: 4 at most (256 is there; 257-259 fit, 260 not).
	st := decode(exp(1), v9Packet(1, testSecs, 0, set(0, v9Tpl(257, fiveTuple...), v9Tpl(258, fiveTuple...), v9Tpl(259, fiveTuple...), v9Tpl(260, fiveTuple...))))
	if st.Refused != 1 {
		t.Fatalf("fifth template: refused %d", st.Refused)
	}
	// Refreshes are free; changes count: exporter 1 made 4 changes, 2 more
	// fit in the minute, the third is refused.
	decode(exp(1), v9Packet(1, testSecs, 0, set(0, v9Tpl(256, fiveTuple...))))
	for i, want := range []int{0, 0, 1} {
		if st := decode(exp(1), v9Packet(1, testSecs, 0, set(0, v9Tpl(257, fiveTuple[:3+i]...)))); st.Refused != want {
			t.Fatalf("change %d: refused %d, want %d", i+1, st.Refused, want)
		}
	}
	// The early-data queue stops at 64 KiB for every exporter together.
	body := make([][]byte, 0, 20)
	for i := range 20 {
		body = append(body, fiveTupleRec(i))
	}
	dropped := 0
	for i := 0; i < 200; i++ {
		st := decode(exp(2), v9Packet(1, testSecs, 0, set(300, body...)))
		dropped += st.DroppedQueued
	}
	if d.PendingBytes() > 64<<10 || dropped == 0 {
		t.Fatalf("pending %d bytes, dropped %d", d.PendingBytes(), dropped)
	}
}
