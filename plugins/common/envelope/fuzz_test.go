package envelope

import (
	"net/netip"
	"testing"
	"time"
)

// FuzzParse: no input makes Parse, Scan, AppendSets or TemplateRecords
// panic, and what AppendSets keeps scans as templates only.
func FuzzParse(f *testing.F) {
	f.Add(AppendHeader(nil, TypePacket, netip.MustParseAddrPort("192.0.2.1:5"), 1))
	f.Add([]byte{0, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 1, 0, 0, 1, 0, 8, 0, 4})
	f.Add([]byte{0, 10, 0, 28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 12, 1, 0, 0, 1, 0x80, 8, 0, 4})
	tmpl, data := generated(f, 10)
	f.Add(tmpl[0])
	f.Add(data[0])
	sg := NewSigner("fuzz-secret-0123456789")
	f.Add(sg.Seal(AppendHeader(nil, TypeTemplates, netip.AddrPort{}, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, p, err := Parse(b); err == nil && len(p) > len(b) {
			t.Fatalf("payload of %d bytes from a %d-byte datagram", len(p), len(b))
		}
		if sg.Verify(b, 1, time.Second) == nil {
			// Only a datagram sealed with the secret verifies: re-sealing
			// its body must give the same bytes.
			body := append([]byte(nil), b[:len(b)-TagLen]...)
			if re := sg.Seal(body); string(re) != string(b) {
				t.Fatalf("a datagram verified that the signer did not seal")
			}
		}
		k, err := Scan(b)
		only := AppendSets(nil, b, func(_ uint16, tpl bool) bool { return tpl })
		if err == nil && k&KindTemplates != 0 && len(only) > 0 {
			if k2, err := Scan(only); err != nil || k2&KindData != 0 {
				t.Fatalf("templates-only part scans as %v, %v", k2, err)
			}
		}
		TemplateRecords(b, func(TemplateRecord) {})
	})
}
