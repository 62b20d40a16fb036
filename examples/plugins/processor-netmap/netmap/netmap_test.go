package netmap

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowline/flowline/sdk"
)

func TestLongestPrefixTags(t *testing.T) {
	dir := t.TempDir()
	csv := "# prefix,tag\n10.0.0.0/8,1\n10.1.0.0/16,2\n2001:db8::/32,6\n\n"
	if err := os.WriteFile(filepath.Join(dir, "nets.csv"), []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := sdk.NewHarness(New, `networks_file = "nets.csv"`, dir)
	if err != nil {
		t.Fatal(err)
	}
	recs := []sdk.Record{
		{SrcAddr: netip.MustParseAddr("10.1.2.3"), DstAddr: netip.MustParseAddr("10.9.9.9"), Packets: 1},
		{SrcAddr: netip.MustParseAddr("192.0.2.1"), DstAddr: netip.MustParseAddr("2001:db8::1"), Packets: 2},
	}
	out, err := h.Process(recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Tag != 2 || out[0].Tag2 != 1 || out[1].Tag != 0 || out[1].Tag2 != 6 || out[1].Packets != 2 {
		t.Fatalf("tags: %+v", out)
	}
	if out[1].Present&sdk.FieldTag != 0 || out[1].Present&sdk.FieldTag2 == 0 {
		t.Errorf("present bits: %b", out[1].Present)
	}
}

func TestBadLine(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "nets.csv"), []byte("10.0.0.0/8,1\n10.0.0.0/33,2\n"), 0o644)
	_, err := sdk.NewHarness(New, `networks_file = "nets.csv"`, dir)
	if err == nil || !strings.Contains(err.Error(), "nets.csv:2") {
		t.Fatalf("bad prefix: %v", err)
	}
}
