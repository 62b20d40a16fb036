package pcapin

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/flowline/flowline/sdk"
)

func corpus(t *testing.T, name string) string {
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "..", "shared", "corpus", "logstash-codec-netflow", "sequences", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("corpus not found: %v", err)
	}
	return p
}

// Every UDP datagram of the capture comes out, in order, with its source.
func TestReplay(t *testing.T) {
	path := corpus(t, "netflow_9_cisco_asa.pcap")
	h, err := sdk.NewHarness(New, "file = \""+path+"\"\nbatch_packets = 2", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	batches, err := h.Run(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, b := range batches {
		for _, p := range b.Packets {
			n++
			if p.Exporter.String() != "127.0.0.1:50000" || len(p.Data) < 20 || p.Data[1] != 9 {
				t.Errorf("packet %d: %s, %d bytes, version byte %d", n, p.Exporter, len(p.Data), p.Data[1])
			}
		}
	}
	if n == 0 || len(batches) != (n+1)/2 {
		t.Fatalf("%d datagrams in %d batches", n, len(batches))
	}
}

func TestNotAPcap(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.pcap"), []byte("hello, this is not a capture"), 0o644)
	if _, err := sdk.NewHarness(New, `file = "x.pcap"`, dir); err == nil || !strings.Contains(err.Error(), "not a pcap") {
		t.Fatalf("err = %v", err)
	}
}
