// Package cluster runs the real flowline binary as a replicator and several
// collectors on loopback: flowgen sends flows to the replicator, the
// collectors print pmacct JSON to their own files, and the tests check that
// the sums across the files equal what flowgen sent.
package cluster

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/testbin"
)

// flowlineBin is the binary under test, built once by TestMain ("" under -short).
var flowlineBin string

func TestMain(m *testing.M) {
	flowlineBin = testbin.BuildForMain()
	os.Exit(m.Run())
}

func freeUDPPort(t testing.TB) int { return testbin.FreeUDPPort(t) }

func freeTCPPort(t testing.TB) int { return testbin.FreeTCPPort(t) }

// proc is a running flowline process of the cluster.
type proc struct {
	*testbin.Process
	name    string
	dir     string
	metrics string // host:port of /metrics
}

// start writes config to dir/flowline.toml and runs `flowline run`, waiting
// until the pipeline runs.
func start(t testing.TB, name, dir, metrics, config string, env ...string) *proc {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "flowline.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := testbin.Launch(t, testbin.Options{Dir: dir, Args: []string{"run", "--config", path}, Env: env,
		Name: name, StartTimeout: 20 * time.Second, StopTimeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &proc{Process: p, name: name, dir: dir, metrics: metrics}
}

// metric sums the samples of a metric (all label sets) from /metrics; it
// returns -1 when the metric is not exposed.
func metric(t testing.TB, addr, name string) float64 {
	t.Helper()
	if v, ok := testbin.TryMetric(t, addr, name); ok {
		return v
	}
	return -1
}

// waitMetric waits until cond holds for the metric's value, up to d.
func waitMetric(t testing.TB, addr, name string, d time.Duration, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v := metric(t, addr, name)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s at %s = %v: condition not met within %s", name, addr, v, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fileSums are the sums of one print file.
type fileSums struct {
	lines          int
	packets, bytes uint64
	byExporter     map[string]uint64 // packets per peer_ip_src
}

func sums(t testing.TB, path string) fileSums {
	t.Helper()
	s := fileSums{byExporter: map[string]uint64{}}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return s
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row struct {
			Peer    string `json:"peer_ip_src"`
			Packets uint64 `json:"packets"`
			Bytes   uint64 `json:"bytes"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("%s line %d: %v: %s", path, s.lines+1, err, sc.Text())
		}
		s.lines++
		s.packets += row.Packets
		s.bytes += row.Bytes
		s.byExporter[row.Peer] += row.Packets
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}
