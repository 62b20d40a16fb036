package pmacct

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNfacctdProbe prints what nfacctd writes for the fixed flow set; it is a
// developer tool (FLOWLINE_PROBE=json|csv) used to write the print plugin's
// golden forms.
func TestNfacctdProbe(t *testing.T) {
	format := os.Getenv("FLOWLINE_PROBE")
	if format == "" {
		t.Skip("set FLOWLINE_PROBE=json|csv to print nfacctd's output")
	}
	bin, err := exec.LookPath("nfacctd")
	if err != nil {
		t.Skip("nfacctd not installed")
	}
	agg := os.Getenv("FLOWLINE_PROBE_AGG")
	if agg == "" {
		agg = "src_host,dst_host,src_port,dst_port,tcpflags,proto"
	}
	dir := t.TempDir()
	port := freeUDPPort(t)
	out := filepath.Join(dir, "out."+format)
	var extra []string
	if e := os.Getenv("FLOWLINE_PROBE_EXTRA"); e != "" {
		extra = strings.Split(e, ";")
	}
	conf := nfacctdConfig(t, dir, port, agg, format, out, extra...)
	p := startProc(t, "nfacctd", []string{bin, "-f", conf}, dir)
	waitUDPListening(t, p, port, 10*time.Second)
	flows := testFlows()
	if os.Getenv("FLOWLINE_PROBE_ALLPROTO") != "" {
		base := flows[0]
		flows = nil
		for p := 0; p < 256; p++ {
			f := base
			f.proto = uint8(p)
			flows = append(flows, f)
		}
	}
	sendAll(t, port, encodeV9(flows, uint32(time.Now().Unix()), 100000, 7, 16))
	time.Sleep(4 * time.Second)
	p.stop(t, syscall.SIGINT, 10*time.Second)
	for _, l := range readLines(t, out) {
		t.Log(l)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "nfacctd.log"))
	t.Logf("log:\n%s\nout:\n%s", log, p.out.String())
}
