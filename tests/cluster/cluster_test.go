package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/plugins/common/envelope"
)

// collectorConfig is a collector on an inputs.replica port that aggregates
// by exporter and 5-tuple and prints JSON lines to dir/flows.jsonl.
func collectorConfig(dir string, port int, metrics, templates string) string {
	return fmt.Sprintf(`
[agent]
  data_dir = %q
  metrics_address = %q

[[inputs.replica]]
  address = "127.0.0.1:%d"
  read_buffer = "32MiB"

[[processors.templates]]
%s

[[processors.aggregate]]
  primitives = ["peer_src_ip", "src_host", "dst_host", "src_port", "dst_port", "proto"]
  history = "1m"
  refresh = "2s"
  time = "arrival"

[[outputs.print]]
  format = "json"
  file = %q
  timestamps_utc = true
`, filepath.Join(dir, "data"), metrics, port, templates, filepath.Join(dir, "flows.jsonl"))
}

// replicatorConfig is a replicator on port that tees to receivers.
func replicatorConfig(dir string, port int, metrics string, receivers []string, balance string, transparent bool) string {
	return fmt.Sprintf(`
[agent]
  data_dir = %q
  metrics_address = %q

[[inputs.netflow]]
  address = "127.0.0.1:%d"
  read_buffer = "32MiB"

[[outputs.tee]]
  transparent = %v
  probe_interval = "200ms"
  probe_timeout = "1s"
  [[outputs.tee.pool]]
    id = 1
    receivers = ["%s"]
    balance = %q
`, filepath.Join(dir, "data"), metrics, port, transparent, strings.Join(receivers, `", "`), balance)
}

// cluster is n collectors behind one replicator.
type cluster struct {
	t          *testing.T
	dir        string
	collectors []*proc
	configs    []string
	receivers  []string
	replicator *proc
	port       int
}

func newCluster(t *testing.T, n int, balance string, transparent bool, templates string) *cluster {
	c := &cluster{t: t, dir: t.TempDir()}
	for i := 0; i < n; i++ {
		dir := filepath.Join(c.dir, fmt.Sprintf("c%d", i+1))
		port := freeUDPPort(t)
		cfg := collectorConfig(dir, port, fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)), templates)
		c.configs = append(c.configs, cfg)
		c.receivers = append(c.receivers, fmt.Sprintf("127.0.0.1:%d", port))
		c.collectors = append(c.collectors, start(t, fmt.Sprintf("collector %d", i+1), dir, metricsOf(cfg), cfg))
	}
	c.port = freeUDPPort(t)
	rdir := filepath.Join(c.dir, "replicator")
	rm := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	c.replicator = start(t, "replicator", rdir, rm, replicatorConfig(rdir, c.port, rm, c.receivers, balance, transparent))
	c.waitUp(n)
	return c
}

func metricsOf(cfg string) string {
	i := strings.Index(cfg, `metrics_address = "`)
	rest := cfg[i+len(`metrics_address = "`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// waitUp waits until the replicator has n receivers in the rotation.
func (c *cluster) waitUp(n int) {
	c.t.Helper()
	waitMetric(c.t, c.replicator.metrics, "flowline_tee_receiver_up", 10*time.Second, func(v float64) bool { return v == float64(n) })
}

func (c *cluster) target() string { return fmt.Sprintf("127.0.0.1:%d", c.port) }

// stopAll stops the replicator, then the collectors, and returns each
// collector's sums.
func (c *cluster) stopAll() []fileSums {
	c.t.Helper()
	time.Sleep(300 * time.Millisecond) // let the last datagrams leave the socket buffers
	c.replicator.Stop()
	time.Sleep(200 * time.Millisecond)
	var out []fileSums
	for _, p := range c.collectors {
		p.Stop()
		out = append(out, sums(c.t, filepath.Join(p.dir, "flows.jsonl")))
	}
	return out
}

func send(t *testing.T, cfg flowgen.Config) flowgen.Totals {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tot, err := flowgen.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("flowgen: %v", err)
	}
	return tot
}

// checkExact compares the sums across the collectors with flowgen's totals.
func checkExact(t *testing.T, got []fileSums, tot flowgen.Totals, procs []*proc) {
	t.Helper()
	var pkts, byts uint64
	for _, s := range got {
		pkts += s.packets
		byts += s.bytes
	}
	if pkts != tot.FlowPackets || byts != tot.FlowBytes {
		var logs strings.Builder
		for _, p := range procs {
			fmt.Fprintf(&logs, "--- %s\n%s", p.name, p.Log())
		}
		t.Fatalf("collectors stored %d packets, %d bytes; flowgen sent %d packets, %d bytes\n%s", pkts, byts, tot.FlowPackets, tot.FlowBytes, logs.String())
	}
	t.Logf("%d flows in %d datagrams: %d packets, %d bytes exact across %d collectors", tot.Flows, tot.Packets, pkts, byts, len(got))
}

// decodedEverything checks a collector's template processor: nothing
// malformed, nothing left waiting for a template, nothing dropped.
func decodedEverything(t *testing.T, p *proc) {
	t.Helper()
	for _, m := range []string{"flowline_templates_malformed_packets_total", "flowline_templates_data_sets_dropped_total", "flowline_templates_data_sets_expired_total"} {
		if v := metric(t, p.metrics, m); v != 0 {
			t.Errorf("%s: %s = %v, want 0", p.name, m, v)
		}
	}
}

func flowgenConfig(target string, flows uint64, seed int64) flowgen.Config {
	return flowgen.Config{
		Target: target, Version: 9, Flows: flows, Rate: 100_000, Seed: seed, SourceIDs: 4,
		TemplateInterval: 10 * time.Second, TemplateEvery: 1 << 30,
	}
}

// TestRoundRobinExactTotals: flowgen -> replicator (rr) -> 3 collectors.
func TestRoundRobinExactTotals(t *testing.T) {
	for _, v := range []int{9, 10} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			c := newCluster(t, 3, "rr", false, "")
			cfg := flowgenConfig(c.target(), 240_000, int64(v))
			cfg.Version = v
			tot := send(t, cfg)
			time.Sleep(300 * time.Millisecond)
			for _, p := range c.collectors {
				decodedEverything(t, p)
			}
			sent := metric(t, c.replicator.metrics, "flowline_tee_templates_sent_total")
			got := c.stopAll()
			checkExact(t, got, tot, c.collectors)
			for i, s := range got {
				share := float64(s.packets) / float64(tot.FlowPackets)
				t.Logf("collector %d: %.1f%% of the packets", i+1, 100*share)
				if share < 0.25 || share > 0.42 {
					t.Errorf("collector %d got %.1f%% of the flow packets; want about a third", i+1, 100*share)
				}
			}
			if want := float64(3 * tot.TemplatePackets); sent < want {
				t.Errorf("tee sent %v template datagrams, want at least %v (every template to every receiver)", sent, want)
			}
		})
	}
}

var exporters = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"}

// TestHashByExporter: each exporter's data lands on one collector.
func TestHashByExporter(t *testing.T) {
	c := newCluster(t, 3, "hash-exporter", false, "")
	cfg := flowgenConfig(c.target(), 180_000, 21)
	cfg.Exporters = exporters
	tot := send(t, cfg)
	got := c.stopAll()
	checkExact(t, got, tot, c.collectors)
	owner := map[string]int{}
	for i, s := range got {
		for exp := range s.byExporter {
			if j, ok := owner[exp]; ok {
				t.Errorf("exporter %s on collectors %d and %d", exp, j+1, i+1)
			}
			owner[exp] = i
		}
	}
	if len(owner) != len(exporters) {
		t.Errorf("%d exporters stored, want %d: %v", len(owner), len(exporters), owner)
	}
	t.Logf("exporter -> collector: %v", owner)
}

// TestSharedTemplatesOnly: a load balancer (here a small one in the test,
// which keeps the exporter's address like nginx with proxy_bind transparent)
// sends templates to collector 1 only and data round robin to all three,
// data first. Collectors share templates, directly with their peers or
// through a replicator's templates port (inputs.replica + outputs.tee,
// deployment b): totals exact.
func TestSharedTemplatesOnly(t *testing.T) {
	for _, via := range []string{"peers", "replicator"} {
		t.Run(via, func(t *testing.T) { sharedTemplatesOnly(t, via == "replicator") })
	}
}

func sharedTemplatesOnly(t *testing.T, viaReplicator bool) {
	if flowlineBin == "" {
		t.Skip("needs the binary")
	}
	dir := t.TempDir()
	var ports []int
	var receivers []string
	for i := 0; i < 3; i++ {
		ports = append(ports, freeUDPPort(t))
		receivers = append(receivers, fmt.Sprintf("127.0.0.1:%d", ports[i]))
	}
	var replicator *proc
	var templatesPort int
	if viaReplicator {
		templatesPort = freeUDPPort(t)
		rdir := filepath.Join(dir, "replicator")
		rm := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
		cfg := fmt.Sprintf(`
[agent]
  data_dir = %q
  metrics_address = %q
[[inputs.replica]]
  address = "127.0.0.1:%d"
[[outputs.tee]]
  [[outputs.tee.pool]]
    id = 1
    receivers = ["%s"]
    balance = "all"
`, filepath.Join(rdir, "data"), rm, templatesPort, strings.Join(receivers, `", "`))
		replicator = start(t, "replicator", rdir, rm, cfg)
	}
	var procs []*proc
	for i := range ports {
		var to []string
		if viaReplicator {
			to = []string{fmt.Sprintf("127.0.0.1:%d", templatesPort)}
		} else {
			for j := range ports {
				if j != i {
					to = append(to, receivers[j])
				}
			}
		}
		tmpl := fmt.Sprintf("  share_to = [\"%s\"]\n", strings.Join(to, `", "`))
		cdir := filepath.Join(dir, fmt.Sprintf("c%d", i+1))
		cfg := collectorConfig(cdir, ports[i], fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)), tmpl)
		procs = append(procs, start(t, fmt.Sprintf("collector %d", i+1), cdir, metricsOf(cfg), cfg))
	}
	if replicator != nil {
		waitMetric(t, replicator.metrics, "flowline_tee_receiver_up", 10*time.Second, func(v float64) bool { return v == 3 })
	}
	lb := startBalancer(t, ports)
	cfg := flowgenConfig(lb.addr, 120_000, 31)
	cfg.Exporters = exporters[:3]
	cfg.TemplateDelay = 10
	tot := send(t, cfg)
	time.Sleep(500 * time.Millisecond)
	lb.close()
	if lb.templates == 0 || lb.data[1] == 0 || lb.data[2] == 0 {
		t.Fatalf("balancer sent %d template datagrams to collector 1 and data %v", lb.templates, lb.data)
	}
	for _, p := range procs {
		decodedEverything(t, p)
	}
	if v := metric(t, procs[1].metrics, "flowline_templates_data_sets_released_total"); v <= 0 {
		t.Errorf("collector 2 released %v queued data sets; the test wants early data", v)
	}
	if replicator != nil {
		t.Logf("replicator: %v template datagrams sent, %v shared templates received",
			metric(t, replicator.metrics, "flowline_tee_templates_sent_total"), metric(t, replicator.metrics, "flowline_replica_shared_templates_total"))
		replicator.Stop()
		procs = append(procs, replicator)
	}
	var got []fileSums
	for _, p := range procs {
		p.Stop()
		if p != replicator {
			got = append(got, sums(t, filepath.Join(p.dir, "flows.jsonl")))
		}
	}
	checkExact(t, got, tot, procs)
}

// balancer is a test UDP load balancer: templates to the first collector,
// data round robin, each datagram sent from the exporter's own address.
type balancer struct {
	addr      string
	conn      *net.UDPConn
	wg        sync.WaitGroup
	templates int
	data      []int
}

func startBalancer(t *testing.T, ports []int) *balancer {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lb := &balancer{addr: conn.LocalAddr().String(), conn: conn, data: make([]int, len(ports))}
	out := map[netip.Addr]*net.UDPConn{}
	lb.wg.Add(1)
	go func() {
		defer lb.wg.Done()
		buf := make([]byte, 65535)
		next := 0
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				for _, c := range out {
					c.Close()
				}
				return
			}
			src := out[from.Addr()]
			if src == nil {
				src, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from.Addr(), 0)))
				if err != nil {
					t.Error(err)
					return
				}
				_ = src.SetWriteBuffer(8 << 20)
				out[from.Addr()] = src
			}
			kind, _ := envelope.Scan(buf[:n])
			to := 0
			if kind&envelope.KindTemplates != 0 {
				lb.templates++
			} else {
				to = next % len(ports)
				next++
				lb.data[to]++
			}
			_, _ = src.WriteToUDPAddrPort(buf[:n], netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ports[to])))
		}
	}()
	return lb
}

func (lb *balancer) close() {
	lb.conn.Close()
	lb.wg.Wait()
}

// TestReceiverRestart: a collector stopped mid-run leaves the rotation and
// its share goes to the others; restarted, it comes back. Flows sent while
// every live receiver was known are all stored.
func TestReceiverRestart(t *testing.T) {
	c := newCluster(t, 3, "rr", false, "")
	var all flowgen.Totals
	add := func(x flowgen.Totals) {
		all.Packets += x.Packets
		all.Flows += x.Flows
		all.FlowPackets += x.FlowPackets
		all.FlowBytes += x.FlowBytes
	}
	add(send(t, flowgenConfig(c.target(), 60_000, 41)))
	time.Sleep(300 * time.Millisecond)

	victim := c.collectors[1]
	victim.Stop()
	before := sums(t, filepath.Join(victim.dir, "flows.jsonl"))
	c.waitUp(2)
	sentBefore := metric(t, c.replicator.metrics, fmt.Sprintf(`flowline_tee_packets_sent_total{alias="",kind="outputs",plugin="tee",pool="1",receiver=%q}`, c.receivers[1]))
	add(send(t, flowgenConfig(c.target(), 60_000, 42)))
	time.Sleep(300 * time.Millisecond)
	if after := metric(t, c.replicator.metrics, fmt.Sprintf(`flowline_tee_packets_sent_total{alias="",kind="outputs",plugin="tee",pool="1",receiver=%q}`, c.receivers[1])); after != sentBefore {
		t.Errorf("tee sent %v datagrams to the stopped collector", after-sentBefore)
	}

	c.collectors[1] = start(t, "collector 2 (restarted)", victim.dir, victim.metrics, c.configs[1])
	c.waitUp(3)
	add(send(t, flowgenConfig(c.target(), 60_000, 43)))
	if !strings.Contains(c.replicator.Log(), "sent cached templates to a returning receiver") {
		t.Error("the replicator did not send its cached templates to the returning collector")
	}
	got := c.stopAll()
	if got[1].packets <= before.packets {
		t.Errorf("restarted collector stored nothing new (%d packets before, %d after)", before.packets, got[1].packets)
	}
	checkExact(t, got, all, c.collectors)
}

// TestTransparent: as root, the tee sends raw datagrams with the
// exporter's source address; collectors store the exporters' own addresses.
func TestTransparent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("transparent mode needs root (CI runs as root)")
	}
	c := newCluster(t, 2, "rr", true, "")
	cfg := flowgenConfig(c.target(), 60_000, 51)
	cfg.Exporters = exporters[:2]
	tot := send(t, cfg)
	got := c.stopAll()
	checkExact(t, got, tot, c.collectors)
	seen := map[string]bool{}
	for i, s := range got {
		for exp := range s.byExporter {
			if exp != exporters[0] && exp != exporters[1] {
				t.Errorf("collector %d stored exporter %q; want the exporters' own addresses", i+1, exp)
			}
			seen[exp] = true
		}
	}
	if len(seen) != 2 {
		t.Errorf("collectors stored exporters %v; want both of %v", seen, exporters[:2])
	}
}

// TestSamplingOptionsToAll: the sampling options (options template and
// options data) reach every collector, so each renormalizes the data it
// gets: the stored sums are the sent ones times the rate.
func TestSamplingOptionsToAll(t *testing.T) {
	for _, v := range []int{9, 10} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			c := newCluster(t, 3, "rr", false, "\n[[processors.sampling]]\n  default_rate = 1\n")
			cfg := flowgenConfig(c.target(), 60_000, int64(60+v))
			cfg.Version = v
			cfg.SamplingRate = 10
			tot := send(t, cfg)
			got := c.stopAll()
			tot.FlowPackets *= 10
			tot.FlowBytes *= 10
			checkExact(t, got, tot, c.collectors)
		})
	}
}
