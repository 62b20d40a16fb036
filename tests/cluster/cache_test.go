package cluster

import (
	"fmt"
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
