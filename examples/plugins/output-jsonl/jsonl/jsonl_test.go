package jsonl

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowline/flowline/sdk"
)

func records(n int) []sdk.Record {
	recs := make([]sdk.Record, n)
	for i := range recs {
		r := &recs[i]
		r.SrcAddr = netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		r.DstAddr = netip.MustParseAddr("192.0.2.1")
		r.SrcPort, r.DstPort, r.Proto = uint16(1000+i), 443, 6
		r.Packets, r.Bytes = uint64(i+1), uint64(100*(i+1))
		r.StampInserted, r.StampUpdated = 1_700_000_000e9, 1_700_000_060e9
		r.Present = sdk.FieldSrcAddr | sdk.FieldDstAddr | sdk.FieldSrcPort | sdk.FieldDstPort | sdk.FieldProto | sdk.FieldPackets | sdk.FieldBytes | sdk.FieldStamps
	}
	return recs
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// A resend (same batch id) is acknowledged without a second copy, and a
// crash that left half a batch behind loses it at the next start, so the
// resend writes it whole.
func TestExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	h, err := sdk.NewHarness(New, `path = "out.jsonl"
timestamps_utc = true`, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WriteID(7, records(3)); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteID(7, records(3)); err != nil { // resent after a crash
		t.Fatal(err)
	}
	path := filepath.Join(dir, "out.jsonl")
	got := lines(t, path)
	if len(got) != 3 {
		t.Fatalf("%d lines after a resend, want 3", len(got))
	}
	want := `{"event_type": "purge", "ip_src": "10.0.0.0", "ip_dst": "192.0.2.1", "port_src": 1000, "port_dst": 443, "ip_proto": "tcp", "stamp_inserted": "2023-11-14 22:13:20", "stamp_updated": "2023-11-14 22:14:20", "packets": 1, "bytes": 100}`
	if got[0] != want {
		t.Errorf("line 1:\n got %s\nwant %s", got[0], want)
	}
	h.Close()

	// A crash in the middle of batch 8: half a line made it to the file.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"event_type": "purge", "ip_s`)
	f.Close()
	h2, err := sdk.NewHarness(New, `path = "out.jsonl"`, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if err := h2.WriteID(8, records(2)); err != nil {
		t.Fatal(err)
	}
	if got := lines(t, path); len(got) != 5 || !strings.HasPrefix(got[3], `{"event_type": "purge", "ip_src": "10.0.0.0"`) {
		t.Fatalf("after the crash and the resend: %d lines: %q", len(got), got)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := sdk.NewHarness(New, ``, t.TempDir()); err == nil || !strings.Contains(err.Error(), "path") {
		t.Errorf("missing path: %v", err)
	}
	if _, err := sdk.NewHarness(New, "path = \"x\"\npaht = \"y\"", t.TempDir()); err == nil || !strings.Contains(err.Error(), `unknown key "paht"`) {
		t.Errorf("unknown key: %v", err)
	}
}
