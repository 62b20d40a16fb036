package envelope

import (
	"net/netip"
	"testing"
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
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = Parse(b)
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
