// Package overload offers the real binary more than it can take and checks
// that memory stays bounded and that every loss is counted and said: a
// flood of flowgen's usual mix, a flood of distinct 5-tuples (a
// spoofed-source flood) and a template flood from 10,000 fake exporters.
// These are loopback load tests of 20 s each: -short skips them.
package overload

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/internal/testbin"
)

var flowlineBin string

func TestMain(m *testing.M) {
	flowlineBin = testbin.BuildForMain()
	os.Exit(m.Run())
}

// maxRSS is the bound of the issue: 300 MiB under any load.
const maxRSS = 300 << 20

// collector runs the default configuration (the embedded store) with
// DuckDB's own memory bounded, on free loopback ports.
type collector struct {
	*testbin.Process
	dir, cfg, metrics string
	udp               int
	env               []string
}

func startCollector(t *testing.T) *collector { return startCollectorWith(t, false) }

// startCollectorWith starts the default configuration, or with rawOneCPU
// its raw flow log (no aggregate) with every thread of the collector
// pinned to CPU 0 (taskset), so that flowgen in the test's process can
// offer more than it takes.
func startCollectorWith(t *testing.T, rawOneCPU bool) *collector {
	t.Helper()
	testbin.Flowline(t)
	dir := t.TempDir()
	def, err := os.ReadFile(filepath.Join(testbin.RepoRoot(), "configs", "flowline.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// DuckDB's memory is its own (outputs.duckdb memory_limit), outside
	// the Go heap that agent.max_buffer bounds.
	conf := strings.Replace(string(def), `path = "flowline.duckdb"`, "path = \"flowline.duckdb\"\n  memory_limit = \"64MiB\"", 1)
	if conf == string(def) {
		t.Fatal("configs/flowline.toml changed: no outputs.duckdb path to anchor memory_limit")
	}
	if rawOneCPU {
		i, j := strings.Index(conf, "[[processors.aggregate]]"), strings.Index(conf, "[[outputs.duckdb]]")
		if i < 0 || j < i {
			t.Fatal("configs/flowline.toml changed: no processors.aggregate before outputs.duckdb to remove")
		}
		conf = conf[:i] + conf[j:]
	}
	c := &collector{dir: dir, cfg: filepath.Join(dir, "flowline.toml"), udp: testbin.FreeUDPPort(t)}
	c.metrics = fmt.Sprintf("127.0.0.1:%d", testbin.FreeTCPPort(t))
	if err := os.WriteFile(c.cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c.env = []string{fmt.Sprintf("FLOWLINE_NETFLOW_ADDRESS=127.0.0.1:%d", c.udp), "FLOWLINE_METRICS_ADDRESS=" + c.metrics}
	p, err := testbin.Launch(t, testbin.Options{Dir: dir, Args: []string{"run", "--config", c.cfg}, Env: c.env})
	if err != nil {
		t.Fatal(err)
	}
	c.Process = p
	if rawOneCPU {
		if out, err := exec.Command("taskset", "-a", "-p", "-c", "0", strconv.Itoa(p.Pid())).CombinedOutput(); err != nil {
			t.Fatalf("taskset: %v\n%s", err, out)
		}
	}
	return c
}

// rssSampler reads the process's resident set every 200 ms.
type rssSampler struct {
	mu      sync.Mutex
	samples []int64
	stop    chan struct{}
	done    chan struct{}
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(data), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
					kb, _ := strconv.ParseInt(f[1], 10, 64)
					s.mu.Lock()
					s.samples = append(s.samples, kb<<10)
					s.mu.Unlock()
				}
			}
		}
	}()
	return s
}

// end stops sampling and returns the peak and the steady RSS (the median of
// the second half) and a one-line trace, one value a second, in MiB.
func (s *rssSampler) end() (peak, steady int64, trace string) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for i, v := range s.samples {
		peak = max(peak, v)
		if i%5 == 0 {
			parts = append(parts, strconv.FormatInt(v>>20, 10))
		}
	}
	if n := len(s.samples); n > 0 {
		half := append([]int64(nil), s.samples[n/2:]...)
		sort.Slice(half, func(i, j int) bool { return half[i] < half[j] })
		steady = half[len(half)/2]
	}
	return peak, steady, strings.Join(parts, " ")
}

func metric(t *testing.T, addr, name string) uint64 {
	t.Helper()
	v, _ := testbin.TryMetric(t, addr, name)
	return uint64(v)
}

// stats runs `flowline stats --format json` against the running collector.
func (c *collector) stats(t *testing.T) map[string]any {
	t.Helper()
	cmd := exec.Command(flowlineBin, "stats", "--config", c.cfg, "--format", "json")
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("flowline stats: %v\n%s", err, errb.String())
	}
	var st map[string]any
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("stats: %v\n%s", err, out.String())
	}
	return st
}

// overload offers flowgen traffic at 3 M flows/s for 20 s and checks: RSS
// stays under 300 MiB; every datagram flowgen sent is either taken by the
// input, dropped by it (and counted) or dropped by the kernel (and
// counted); the loss is logged while it happens, in `flowline stats` and in
// the shutdown line.
func overload(t *testing.T, distinct bool) {
	if testing.Short() {
		t.Skip("a 20 s loopback load test")
	}
	// The usual mix: the raw flow log on one CPU, since the default
	// aggregate now takes all that flowgen can offer on a 2-core machine.
	c := startCollectorWith(t, !distinct)
	rss := sampleRSS(c.Pid())
	cfg := flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", c.udp), Version: 9, Rate: 3_000_000, Duration: 20 * time.Second,
		Seed: 1, Distinct: distinct}
	var tot flowgen.Totals
	var genErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		tot, genErr = flowgen.Run(context.Background(), cfg)
	}()
	time.Sleep(12 * time.Second)
	st := c.stats(t)
	<-done
	if genErr != nil {
		t.Fatal(genErr)
	}
	time.Sleep(time.Second) // the socket buffer drains
	peak, steady, trace := rss.end()
	emitted := metric(t, c.metrics, `flowline_plugin_emitted_total{alias="",kind="inputs",plugin="netflow"}`)
	dropped := metric(t, c.metrics, `flowline_plugin_dropped_total{alias="",kind="inputs",plugin="netflow"}`)
	kernel := metric(t, c.metrics, "flowline_input_kernel_drops_total")
	early := metric(t, c.metrics, "flowline_aggregate_early_flushes_total")
	c.Stop()
	log := c.Log()
	t.Logf("offered %.0f flows/s (%d datagrams, %d flows) for %s; input took %d datagrams, dropped %d over the budget or a full queue, the kernel %d; early flushes %d",
		float64(tot.Flows)/cfg.Duration.Seconds(), tot.Packets, tot.Flows, cfg.Duration, emitted, dropped, kernel, early)
	t.Logf("RSS MiB (one a second): %s; peak %d MiB, steady %d MiB", trace, peak>>20, steady>>20)
	if peak >= maxRSS {
		t.Errorf("peak RSS %d MiB, want under %d MiB", peak>>20, maxRSS>>20)
	}
	if emitted+dropped+kernel != tot.Packets {
		t.Errorf("flowgen sent %d datagrams; the input took %d, dropped %d, the kernel %d: %d unaccounted",
			tot.Packets, emitted, dropped, kernel, int64(tot.Packets)-int64(emitted+dropped+kernel))
	}
	if dropped+kernel == 0 {
		t.Errorf("nothing dropped at %d flows offered: not an overload", tot.Flows)
	}
	coll, _ := st["collector"].(map[string]any)
	if n, _ := coll["dropped_packets"].(float64); n == 0 {
		t.Errorf("flowline stats during the overload shows no drops: %v", coll)
	}
	if !strings.Contains(log, `msg="dropped since the last report"`) {
		t.Errorf("no loss line in the log:\n%s", log)
	}
	if want := fmt.Sprintf("dropped_packets=%d", dropped+kernel); !strings.Contains(log, want) {
		t.Errorf("the shutdown line lacks %s:\n%s", want, lastLines(log, 5))
	}
	if strings.Contains(log, "dropped_flows=0 ") || !strings.Contains(log, "dropped_flows=") {
		t.Errorf("the shutdown line counts no dropped flows (NetFlow v9 headers announce them):\n%s", lastLines(log, 3))
	}
	if distinct && early == 0 {
		t.Error("distinct tuples never filled the aggregate's max_keys")
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestOverloadUsualMix offers flowgen's usual mix at 3M flows/s to the raw
// flow log on one CPU (it takes about 2.2M).
func TestOverloadUsualMix(t *testing.T) { overload(t, false) }

func TestOverloadDistinctTuples(t *testing.T) { overload(t, true) }

// v9Header is a NetFlow v9 header of count records from source id 0.
func v9Header(count int, seq uint32) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], 9)
	binary.BigEndian.PutUint16(h[2:], uint16(count))
	binary.BigEndian.PutUint32(h[4:], 1000)
	binary.BigEndian.PutUint32(h[8:], uint32(time.Now().Unix()))
	binary.BigEndian.PutUint32(h[12:], seq)
	return h
}

// floodDatagrams are what one fake exporter sends: ten templates (ids
// 256-265, each a different layout) and twice a data set for template 400,
// which none of them defines (early data that waits in the queue).
func floodDatagrams(i int) [][]byte {
	tpl := v9Header(10, 1)
	var set []byte
	for id := 256; id < 266; id++ {
		n := 2 + (i+id)%20
		set = binary.BigEndian.AppendUint16(set, uint16(id))
		set = binary.BigEndian.AppendUint16(set, uint16(n))
		for f := 0; f < n; f++ {
			set = binary.BigEndian.AppendUint16(set, uint16(1+f))
			set = binary.BigEndian.AppendUint16(set, 4)
		}
	}
	tpl = binary.BigEndian.AppendUint16(tpl, 0)
	tpl = binary.BigEndian.AppendUint16(tpl, uint16(4+len(set)))
	tpl = append(tpl, set...)
	data := v9Header(1, 2)
	data = binary.BigEndian.AppendUint16(data, 400)
	data = binary.BigEndian.AppendUint16(data, 4+1200)
	data = append(data, make([]byte, 1200)...)
	return [][]byte{tpl, data, data}
}

// TestTemplateFlood: while the real exporter (flowgen) sends 300,000 flows,
// 10,000 fake exporters (127.1.x.y) send 100,000 templates and 24 MB of
// early data for a template that never comes (the queue of all exporters
// keeps 16 MiB). RSS stays under 300 MiB, the caps refuse
// (and count) what passes them, and the real exporter's flows are stored
// exactly.
func TestTemplateFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a loopback load test")
	}
	c := startCollector(t)
	rss := sampleRSS(c.Pid())
	target := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: c.udp}
	// The real exporter first, so that it is known when the flood fills
	// max_exporters.
	var tot flowgen.Totals
	var genErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		tot, genErr = flowgen.Run(context.Background(), flowgen.Config{Target: target.String(), Version: 9, Flows: 300_000, Rate: 30_000, Seed: 5,
			TemplateInterval: time.Second, TemplateEvery: 1 << 30})
	}()
	time.Sleep(500 * time.Millisecond)
	const fakes = 10_000
	for i := 0; i < fakes; i++ {
		src := &net.UDPAddr{IP: net.IPv4(127, 1, byte(i>>8), byte(i))}
		conn, err := net.ListenUDP("udp4", src)
		if err != nil {
			t.Fatal(err)
		}
		for _, dg := range floodDatagrams(i) {
			if _, err := conn.WriteToUDP(dg, target); err != nil {
				t.Fatal(err)
			}
		}
		conn.Close()
		if i%500 == 499 {
			time.Sleep(100 * time.Millisecond) // let the socket buffer drain: the flood is of state, not of rate
		}
	}
	<-done
	if genErr != nil {
		t.Fatal(genErr)
	}
	time.Sleep(1500 * time.Millisecond)
	learned := metric(t, c.metrics, "flowline_templates_learned_total")
	refused := metric(t, c.metrics, "flowline_templates_refused_total")
	queuedDropped := metric(t, c.metrics, "flowline_templates_data_sets_dropped_total")
	peak, steady, trace := rss.end()
	c.Stop()
	t.Logf("templates learned %d (refreshes included), refused %d; early data sets dropped %d; RSS MiB %s; peak %d, steady %d",
		learned, refused, queuedDropped, trace, peak>>20, steady>>20)
	if peak >= maxRSS {
		t.Errorf("peak RSS %d MiB, want under %d MiB", peak>>20, maxRSS>>20)
	}
	if queuedDropped == 0 {
		t.Error("24 MB of early data: the 16 MiB early-data cap dropped nothing")
	}
	if refused == 0 {
		t.Error("10,000 fake exporters and the real one: max_exporters (10,000) refused nothing")
	}
	if !strings.Contains(c.Log(), "templates refused") {
		t.Errorf("no log line for refused templates:\n%s", lastLines(c.Log(), 10))
	}
	cmd := exec.Command(flowlineBin, "query", "--config", c.cfg, "--format", "json", "SELECT sum(packets) AS p, sum(bytes) AS b, sum(flows) AS f FROM flows_all")
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`"p": %d, "b": %d, "f": %d`, tot.FlowPackets, tot.FlowBytes, tot.Flows)
	if !strings.Contains(string(out), want) {
		t.Fatalf("stored %s; the real exporter sent %s", out, want)
	}
}
