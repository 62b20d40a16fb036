package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
)

// TestTeeTemplateCacheExpires: the replicator keeps an exporter's templates
// for returning receivers only as long as the templates live
// (template_ttl): an exporter that fell silent leaves the cache, so a flood
// of exporters cannot grow it for ever.
func TestTeeTemplateCacheExpires(t *testing.T) {
	dir := t.TempDir()
	cport := freeUDPPort(t)
	cdir := filepath.Join(dir, "collector")
	cm := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	collector := start(t, "collector", cdir, cm, collectorConfig(cdir, cport, cm, ""))
	rport := freeUDPPort(t)
	rdir := filepath.Join(dir, "replicator")
	rm := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfg := strings.Replace(replicatorConfig(rdir, rport, rm, []string{fmt.Sprintf("127.0.0.1:%d", cport)}, "rr", false),
		"[[outputs.tee]]", "[[outputs.tee]]\n  template_ttl = \"2s\"", 1)
	replicator := start(t, "replicator", rdir, rm, cfg)
	waitMetric(t, rm, "flowline_tee_receiver_up", 10*time.Second, func(v float64) bool { return v == 1 })
	target := fmt.Sprintf("127.0.0.1:%d", rport)
	first := send(t, flowgen.Config{Target: target, Version: 9, Flows: 30_000, Rate: 60_000, Seed: 1, Exporters: []string{"127.0.0.1"}})
	waitMetric(t, rm, "flowline_tee_cached_exporters", 5*time.Second, func(v float64) bool { return v == 1 })
	time.Sleep(3 * time.Second) // past template_ttl: 127.0.0.1 sends nothing more
	second := send(t, flowgen.Config{Target: target, Version: 9, Flows: 30_000, Rate: 60_000, Seed: 2, Exporters: []string{"127.0.0.2"}})
	// The sweep runs with the traffic: only the second exporter is left.
	if v := waitMetric(t, rm, "flowline_tee_cached_exporters", 5*time.Second, func(v float64) bool { return v == 1 }); v != 1 {
		t.Fatalf("cached exporters %v", v)
	}
	procs := []*proc{replicator, collector}
	time.Sleep(2500 * time.Millisecond)
	replicator.Stop()
	collector.Stop()
	got := sums(t, filepath.Join(cdir, "flows.jsonl"))
	want := flowgen.Totals{FlowPackets: first.FlowPackets + second.FlowPackets, FlowBytes: first.FlowBytes + second.FlowBytes, Flows: first.Flows + second.Flows, Packets: first.Packets + second.Packets}
	checkExact(t, []fileSums{got}, want, procs)
}

// TestTransparentIPv6: the transparent tee carries IPv6 exporters to IPv6
// receivers in raw IPv6 packets with their own source (and a UDP checksum
// the receiving kernel accepts): flowgen's totals arrive exactly.
func TestTransparentIPv6(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("transparent mode needs root (CI runs as root)")
	}
	dir := t.TempDir()
	cport := freeUDPPort(t)
	cdir := filepath.Join(dir, "collector")
	cm := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	ccfg := strings.Replace(collectorConfig(cdir, cport, cm, ""), fmt.Sprintf(`address = "127.0.0.1:%d"`, cport), fmt.Sprintf(`address = "[::1]:%d"`, cport), 1)
	collector := start(t, "collector", cdir, cm, ccfg)
	rport := freeUDPPort(t)
	rdir := filepath.Join(dir, "replicator")
	rm := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	rcfg := replicatorConfig(rdir, rport, rm, []string{fmt.Sprintf("[::1]:%d", cport)}, "rr", true)
	rcfg = strings.Replace(rcfg, fmt.Sprintf(`address = "127.0.0.1:%d"`, rport), fmt.Sprintf(`address = "[::1]:%d"`, rport), 1)
	rcfg = strings.Replace(rcfg, "[[outputs.tee]]", "[[outputs.tee]]\n  liveness = \"none\"", 1)
	replicator := start(t, "replicator", rdir, rm, rcfg)
	tot := send(t, flowgen.Config{Target: fmt.Sprintf("[::1]:%d", rport), Version: 10, Flows: 60_000, Rate: 60_000, Seed: 61, IPv6Share: 0.5})
	time.Sleep(2500 * time.Millisecond)
	if v := metric(t, rm, "flowline_tee_send_errors_total"); v != 0 {
		t.Errorf("send errors: %v", v)
	}
	replicator.Stop()
	collector.Stop()
	got := sums(t, filepath.Join(cdir, "flows.jsonl"))
	checkExact(t, []fileSums{got}, tot, []*proc{replicator, collector})
	if got.byExporter["::1"] == 0 {
		t.Errorf("exporters stored %v; want ::1 (flowgen's own address)", got.byExporter)
	}
}
