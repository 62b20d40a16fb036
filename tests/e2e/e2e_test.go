// Package e2e runs the real flowline binary: flowgen sends flows over
// loopback, flowline aggregates and prints them, and the tests check every
// total after a SIGTERM shutdown.
package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/internal/testbin"
)

var (
	startCollector = testbin.Start
	freeUDPPort    = func(t *testing.T) int { return testbin.FreeUDPPort(t) }
	freeTCPPort    = func(t *testing.T) int { return testbin.FreeTCPPort(t) }
	sums           = func(t *testing.T, path string) (int, uint64, uint64) { return testbin.Sums(t, path) }
	metric         = func(t *testing.T, addr, name string) float64 { return testbin.Metric(t, addr, name) }
)

// collectorConfig is a collector on udpPort that aggregates 5-tuples and
// prints JSON lines to out.
func collectorConfig(dir string, udpPort int, metricsAddr, extra string) string {
	return fmt.Sprintf(`
[agent]
  data_dir = %q
  metrics_address = %q

[[inputs.netflow]]
  address = "127.0.0.1:%d"
  read_buffer = "64MiB"

%s

[[processors.aggregate]]
  primitives = ["src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"]
  history = "1m"
  refresh = "2s"
  time = "arrival"

[[outputs.print]]
  format = "json"
  file = %q
  timestamps_utc = true
`, filepath.Join(dir, "data"), metricsAddr, udpPort, extra, filepath.Join(dir, "flows.jsonl"))
}

// send runs flowgen against the collector and returns its totals.
func send(t *testing.T, cfg flowgen.Config) flowgen.Totals {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tot, err := flowgen.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("flowgen: %v", err)
	}
	if tot.Flows != cfg.Flows {
		t.Fatalf("flowgen sent %d flows, want %d", tot.Flows, cfg.Flows)
	}
	return tot
}

// checkTotals stops the collector and compares the printed sums with what
// flowgen sent, times the sampling rate.
func checkTotals(t *testing.T, c *testbin.Process, dir string, tot flowgen.Totals, rate uint64) {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let the last datagrams leave the socket buffer
	c.Stop()
	lines, pkts, bytes := sums(t, filepath.Join(dir, "flows.jsonl"))
	if pkts != tot.FlowPackets*rate || bytes != tot.FlowBytes*rate {
		t.Fatalf("stored %d packets, %d bytes in %d lines; flowgen sent %d packets, %d bytes (x%d = %d, %d)\n%s",
			pkts, bytes, lines, tot.FlowPackets, tot.FlowBytes, rate, tot.FlowPackets*rate, tot.FlowBytes*rate, c.Log())
	}
	t.Logf("%d flows -> %d aggregated lines; %d packets, %d bytes exact", tot.Flows, lines, pkts, bytes)
}

func TestMillionFlowsExactTotals(t *testing.T) {
	for _, v := range []int{9, 10, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			flows := uint64(1_000_000)
			if v != 9 {
				flows = 200_000
			}
			dir := t.TempDir()
			port := freeUDPPort(t)
			c := startCollector(t, dir, collectorConfig(dir, port, "", ""))
			tot := send(t, flowgen.Config{
				Target: fmt.Sprintf("127.0.0.1:%d", port), Version: v, Flows: flows,
				Rate: 400_000, Seed: int64(v), SourceIDs: 4,
			})
			checkTotals(t, c, dir, tot, 1)
		})
	}
}

func TestSamplingRateRenormalizes(t *testing.T) {
	for _, v := range []int{9, 10, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			dir := t.TempDir()
			port := freeUDPPort(t)
			c := startCollector(t, dir, collectorConfig(dir, port, "", "[[processors.sampling]]\n  default_rate = 1\n"))
			tot := send(t, flowgen.Config{
				Target: fmt.Sprintf("127.0.0.1:%d", port), Version: v, Flows: 100_000,
				Rate: 300_000, Seed: 7, SourceIDs: 3, SamplingRate: 100,
			})
			checkTotals(t, c, dir, tot, 100)
		})
	}
}

func TestEarlyDataWaitsForTemplate(t *testing.T) {
	for _, v := range []int{9, 10} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			dir := t.TempDir()
			port := freeUDPPort(t)
			c := startCollector(t, dir, collectorConfig(dir, port, "", ""))
			tot := send(t, flowgen.Config{
				Target: fmt.Sprintf("127.0.0.1:%d", port), Version: v, Flows: 30_000,
				Rate: 200_000, Seed: 3, SourceIDs: 2, TemplateDelay: 20, TemplateEvery: 1_000_000,
			})
			checkTotals(t, c, dir, tot, 1)
		})
	}
}

// TestTemplatesSurviveRestart sends templates and data, restarts the
// collector, then sends data only: it must decode with the saved templates.
func TestTemplatesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	port := freeUDPPort(t)
	cfg := collectorConfig(dir, port, "", "")
	c := startCollector(t, dir, cfg)
	send(t, flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 9, Flows: 3000, Seed: 11, SourceIDs: 2, Rate: 100_000})
	time.Sleep(200 * time.Millisecond)
	c.Stop()
	_, before, _ := sums(t, filepath.Join(dir, "flows.jsonl"))

	c = startCollector(t, dir, cfg)
	g, err := flowgen.NewGenerator(flowgen.Config{Version: 9, Flows: 6000, Seed: 12, SourceIDs: 2})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var wantPkts, wantBytes uint64
	for i := 0; i < 100_000; i++ {
		pkt, kind, _ := g.Next()
		if kind == flowgen.PacketNone {
			break
		}
		if kind != flowgen.PacketData {
			continue // no template after the restart
		}
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
		info := g.Last()
		wantPkts += info.FlowPackets
		wantBytes += info.FlowBytes
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)
	c.Stop()
	_, after, afterBytes := sums(t, filepath.Join(dir, "flows.jsonl"))
	if got := after - before; got != wantPkts {
		t.Fatalf("after restart %d packets stored from data-only datagrams, want %d (bytes total %d, want +%d)\n%s", got, wantPkts, afterBytes, wantBytes, c.Log())
	}
}

// TestBadInputIsCountedAndSkipped interleaves random and truncated datagrams
// with valid traffic: totals stay exact, the process keeps running, and the
// malformed datagrams are counted.
func TestBadInputIsCountedAndSkipped(t *testing.T) {
	dir := t.TempDir()
	port := freeUDPPort(t)
	maddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	c := startCollector(t, dir, collectorConfig(dir, port, maddr, ""))
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	g, err := flowgen.NewGenerator(flowgen.Config{Version: 10, Flows: 20_000, Seed: 5, SourceIDs: 2})
	if err != nil {
		t.Fatal(err)
	}
	var wantPkts, wantBytes uint64
	var bad int
	junk := make([]byte, 1500)
	for i := 0; i < 100_000; i++ {
		pkt, kind, _ := g.Next()
		if kind == flowgen.PacketNone {
			break
		}
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
		info := g.Last()
		wantPkts += info.FlowPackets
		wantBytes += info.FlowBytes
		if kind != flowgen.PacketData {
			continue
		}
		// A copy of a valid datagram cut inside its first record (the
		// decoder keeps the whole records of a truncated set, as Telegraf's
		// corpus expects, so a longer cut would count flows twice here), and
		// random bytes dressed as a v9 or IPFIX header, or of no known
		// version. (Random bytes behind a v5 header can be a well-formed v5
		// datagram: no decoder can tell.)
		_, _ = conn.Write(pkt[:16+4+10+i%20])
		_, _ = rand.Read(junk)
		copy(junk, []byte{0, byte([]int{9, 10, 77}[i%3])})
		_, _ = conn.Write(junk[:20+i%1400])
		bad += 2
		if i%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)
	malformed := metric(t, maddr, "flowline_templates_malformed_packets_total")
	c.Stop()
	_, pkts, bytes := sums(t, filepath.Join(dir, "flows.jsonl"))
	if pkts != wantPkts || bytes != wantBytes {
		t.Fatalf("with bad input interleaved: stored %d packets %d bytes, want %d %d\n%s", pkts, bytes, wantPkts, wantBytes, c.Log())
	}
	// Random bytes can by chance be a valid (empty) datagram; a truncated v9
	// or IPFIX datagram always fails its length checks.
	if malformed < float64(bad)/2 {
		t.Fatalf("malformed datagrams counted: %v, sent %d bad ones", malformed, bad)
	}
	t.Logf("%d bad datagrams sent, %v counted as malformed", bad, malformed)
}
