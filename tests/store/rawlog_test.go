package store

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
)

// rawLogConfig is a collector on loopback ports with no aggregate: the
// duckdb output is the raw flow log, one row per flow.
func rawLogConfig(udpPort, metricsPort int) string {
	return collectorConfig(udpPort, metricsPort) + `
[[outputs.duckdb]]
  [outputs.duckdb.raw_log]
    segment_rows = 65536
    flush_every = "500ms"
  [outputs.duckdb.lifecycle]
    compress_after = "0s"
    check_every = "1h"
`
}

// TestRawFlowLogExactTotals: flowgen -> netflow -> duckdb with no aggregate
// (the raw flow log). `flowline query` sums exactly flowgen's totals, one
// row per flow: through the running collector once the buffers are
// flushed, after a compaction that merges the segments, after SIGTERM and
// reopening the file, and `flowline stats` reports the rows and the bytes
// per flow of the archive.
func TestRawFlowLogExactTotals(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	udp, mport := freeUDPPort(t), freeTCPPort(t)
	cfg := filepath.Join(dir, "flowline.toml")
	writeFile(t, cfg, rawLogConfig(udp, mport))
	c := start(t, dir, nil, "--config", cfg)
	target := fmt.Sprintf("127.0.0.1:%d", udp)
	a := send(t, flowgen.Config{Target: target, Version: 9, Flows: 400_000, Rate: 150_000, Seed: 11, IPv6Share: 0.1})
	check := func(when string, got storeTotals, flows, packets, bytes uint64) {
		t.Helper()
		if got.Rows != flows || got.Flows != flows || got.Packets != packets || got.Bytes != bytes {
			t.Fatalf("%s: stored %+v; flowgen sent %d flows, %d packets, %d bytes\n%s", when, got, flows, packets, bytes, c.Log())
		}
	}
	// flush_every is 500ms: within a few seconds every flow is in a segment.
	deadline := time.Now().Add(20 * time.Second)
	var got storeTotals
	for {
		got = queryTotals(t, dir, nil, "flows_all", "--config", cfg)
		if got.Flows >= a.Flows || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	check("through the running collector", got, a.Flows, a.FlowPackets, a.FlowBytes)
	segments, _ := filepath.Glob(filepath.Join(dir, "data", "archive", "raw", "v0", "*.parquet"))
	if len(segments) < 4 {
		t.Fatalf("%d segment files for %d flows at 65536 rows a segment", len(segments), a.Flows)
	}
	out := cli(t, dir, nil, "compact", "--config", cfg, "--now")
	t.Log(out)
	merged, _ := filepath.Glob(filepath.Join(dir, "data", "archive", "raw", "v0", "*.parquet"))
	if len(merged) >= len(segments) {
		t.Fatalf("compact --now left %d files of %d segments", len(merged), len(segments))
	}
	check("after compaction", queryTotals(t, dir, nil, "flows_all", "--config", cfg), a.Flows, a.FlowPackets, a.FlowBytes)

	b := send(t, flowgen.Config{Target: target, Version: 10, Flows: 100_000, Rate: 150_000, Seed: 12})
	time.Sleep(300 * time.Millisecond)
	c.Stop() // flushes the buffers
	check("after SIGTERM", queryTotals(t, dir, nil, "flows_all", "--config", cfg), a.Flows+b.Flows, a.FlowPackets+b.FlowPackets, a.FlowBytes+b.FlowBytes)
	cli(t, dir, nil, "compact", "--config", cfg, "--now")
	check("after a compaction of the closed store", queryTotals(t, dir, nil, "flows_all", "--config", cfg), a.Flows+b.Flows, a.FlowPackets+b.FlowPackets, a.FlowBytes+b.FlowBytes)

	var st map[string]any
	if err := json.Unmarshal([]byte(cli(t, dir, nil, "stats", "--config", cfg, "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st["compressed_rows"].(float64) != float64(a.Flows+b.Flows) || st["hot_rows"].(float64) != 0 {
		t.Fatalf("stats: %v", st)
	}
	bpf := st["bytes_per_flow_compressed"].(float64)
	if bpf <= 0 || bpf > 25 {
		t.Fatalf("bytes_per_flow_compressed = %.1f, want at most 25", bpf)
	}
	t.Logf("%d flows stored one row each, exact; %.1f bytes/flow compressed", a.Flows+b.Flows, bpf)
}

// TestRawFlowLogKill: kill -9 while flows arrive loses at most the
// buffered flows, never corrupts the store: it reopens, every listed
// segment reads, and a restart goes on storing.
func TestRawFlowLogKill(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	udp, mport := freeUDPPort(t), freeTCPPort(t)
	cfg := filepath.Join(dir, "flowline.toml")
	writeFile(t, cfg, rawLogConfig(udp, mport))
	target := fmt.Sprintf("127.0.0.1:%d", udp)
	var sent flowgen.Totals
	for round := range 3 {
		c := start(t, dir, nil, "--config", cfg)
		done := make(chan flowgen.Totals)
		go func() {
			done <- send(t, flowgen.Config{Target: target, Version: 9, Flows: 150_000, Rate: 100_000, Seed: int64(20 + round)})
		}()
		time.Sleep(time.Duration(700+300*round) * time.Millisecond)
		c.Kill()
		tot := <-done
		sent.Flows += tot.Flows
		got := queryTotals(t, dir, nil, "flows_all", "--config", cfg)
		if got.Flows > sent.Flows || got.Rows != got.Flows {
			t.Fatalf("round %d: stored %+v, sent %d flows so far", round, got, sent.Flows)
		}
		t.Logf("round %d: %d of %d flows stored before the kill", round, got.Flows, sent.Flows)
	}
	c := start(t, dir, nil, "--config", cfg)
	before := queryTotals(t, dir, nil, "flows_all", "--config", cfg)
	last := send(t, flowgen.Config{Target: target, Version: 9, Flows: 50_000, Rate: 100_000, Seed: 30})
	time.Sleep(300 * time.Millisecond)
	c.Stop()
	after := queryTotals(t, dir, nil, "flows_all", "--config", cfg)
	if after.Flows != before.Flows+last.Flows || after.Packets != before.Packets+last.FlowPackets {
		t.Fatalf("after the kills, a clean run stored %+v on top of %+v; sent %d flows, %d packets", after, before, last.Flows, last.FlowPackets)
	}
}
