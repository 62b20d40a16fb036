// Package influxdb tests outputs.influxdb end to end through the real
// binary: flowgen -> flowline (aggregate, refresh 2s, history 1m) -> a real
// InfluxDB 1.8.10 (scripts/influxdb.sh) and VictoriaMetrics
// (scripts/victoriametrics.sh), with exact totals over many refreshes of
// the same bins, one series per tag set, a server outage in the middle of
// a run, and the config check's warning about address tags.
package influxdb

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/internal/influxtest"
	"github.com/flowline/flowline/internal/testbin"
)

// flowlineBin is the binary under test, built once by TestMain ("" under -short).
var flowlineBin string

func TestMain(m *testing.M) {
	flowlineBin = testbin.BuildForMain()
	os.Exit(m.Run())
}

// collectorTOML is a collector on udpPort with the aggregate of the issue
// (refresh 2s over 1m bins) and the given outputs.
func collectorTOML(dir string, udpPort int, metricsAddr, outputs string) string {
	return fmt.Sprintf(`[agent]
  data_dir = %q
  metrics_address = %q
  shutdown_timeout = "60s"

[[inputs.netflow]]
  address = "127.0.0.1:%d"
  read_buffer = "64MiB"

[[processors.aggregate]]
  primitives = ["peer_src_ip", "src_host", "dst_host", "src_port", "dst_port", "proto"]
  history = "1m"
  refresh = "2s"
  time = "arrival"

%s`, filepath.Join(dir, "data"), metricsAddr, udpPort, outputs)
}

// influxTOML is an [[outputs.influxdb]] table for an InfluxDB 1.8 database
// (the token comes from the environment, as in production).
func influxTOML(s influxtest.Server, db, extra string) string {
	return fmt.Sprintf(`[[outputs.influxdb]]
  url = %q
  token = "${FLOWLINE_TEST_INFLUXDB_TOKEN}"
  bucket = "%s/autogen"
%s
`, s.URL, db, extra)
}

func run(t *testing.T, dir, config string, s influxtest.Server) *testbin.Process {
	t.Helper()
	if flowlineBin == "" {
		t.Skip("end-to-end test: skipped with -short")
	}
	path := filepath.Join(dir, "flowline.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := testbin.Launch(t, testbin.Options{Dir: dir, Args: []string{"run", "--config", path},
		Env: []string{"FLOWLINE_TEST_INFLUXDB_TOKEN=" + s.Token}, StartTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEndToEndExactTotals: 1,000,000 flows over many refreshes of the same
// bins into InfluxDB 1.8 and VictoriaMetrics at once: InfluxQL's and
// MetricsQL's sums equal flowgen's totals, and the series are the tag sets
// the print output of the same run shows, each with the same sums.
func TestEndToEndExactTotals(t *testing.T) {
	s := influxtest.InfluxDB(t)
	vm := influxtest.VictoriaMetrics(t)
	// A database of this run's own, so that nothing an earlier run wrote (or
	// still writes) under the same name can count (suspected in two unexplained sums).
	db := fmt.Sprintf("flowline_e2e_%d", time.Now().UnixNano())
	s.CreateDB(t, db)
	vmMeasurement := fmt.Sprintf("flows_e2e_%d", time.Now().UnixNano())
	dir := t.TempDir()
	port := testbin.FreeUDPPort(t)
	maddr := fmt.Sprintf("127.0.0.1:%d", testbin.FreeTCPPort(t))
	printed := filepath.Join(dir, "print.jsonl")
	begin := time.Now()
	c := run(t, dir, collectorTOML(dir, port, maddr, influxTOML(s, db, "")+fmt.Sprintf(`
[[outputs.influxdb]]
  alias = "vm"
  url = %q
  bucket = "ignored"
  measurement = %q

[[outputs.print]]
  format = "json"
  file = %q
`, vm.URL, vmMeasurement, printed)), s)
	// Start at :40-:50 of a minute, so that the 25 s of traffic fill two
	// bins and refresh both many times.
	if sec := time.Now().Second(); sec < 40 || sec >= 50 {
		time.Sleep(time.Duration((100-sec)%60) * time.Second)
	}
	tot := testbin.SendFlows(t, flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 9, Flows: 1_000_000,
		Rate: 40_000, Seed: 31, SourceIDs: 2, HostPool: 2000})
	time.Sleep(3 * time.Second) // a last refresh
	c.Stop()

	_, printedPackets, printedBytes := testbin.Sums(t, printed)
	p, b, points := s.Sums(t, db, "flows")
	if p != tot.FlowPackets || b != tot.FlowBytes {
		t.Fatalf("InfluxDB: %d packets, %d bytes; flowgen sent %d, %d; the print output of the same run has %d, %d\n%s",
			p, b, tot.FlowPackets, tot.FlowBytes, printedPackets, printedBytes, c.Log())
	}
	vp := vm.VMBinSum(t, vmMeasurement+"_packets", begin, time.Minute)
	vb := vm.VMBinSum(t, vmMeasurement+"_bytes", begin, time.Minute)
	if vp != tot.FlowPackets || vb != tot.FlowBytes {
		t.Fatalf("VictoriaMetrics: %d packets, %d bytes; flowgen sent %d, %d", vp, vb, tot.FlowPackets, tot.FlowBytes)
	}

	// The series are the tag sets (exporter, proto) the aggregate's lines
	// carry, each with the packets and bytes of its lines.
	want := map[string][2]uint64{}
	bins := map[string]bool{}
	for _, row := range testbin.ReadJSONLines(t, printed) {
		key := fmt.Sprintf("exporter=%v,proto=%v", row["peer_ip_src"], protoNumber(row["ip_proto"]))
		w := want[key]
		w[0] += num(row["packets"])
		w[1] += num(row["bytes"])
		want[key] = w
		bins[key+fmt.Sprint(row["stamp_inserted"])] = true
	}
	got := s.Query(t, db, `SELECT sum(packets), sum(bytes) FROM "flows" GROUP BY "exporter", "proto"`)
	if len(got) != len(want) {
		t.Fatalf("%d series in InfluxDB, %d tag sets in the print output (%v)", len(got), len(want), want)
	}
	for _, sr := range got {
		key := fmt.Sprintf("exporter=%s,proto=%s", sr.Tags["exporter"], sr.Tags["proto"])
		w, ok := want[key]
		gp, gb := num(sr.Values[0][1]), num(sr.Values[0][2])
		if !ok || gp != w[0] || gb != w[1] {
			t.Errorf("series %s: %d packets, %d bytes; the print output has %d, %d", key, gp, gb, w[0], w[1])
		}
	}
	if points != uint64(len(bins)) || len(bins) <= len(want) {
		t.Errorf("%d points, want one per tag set and bin: %d (%d tag sets, more than one bin)", points, len(bins), len(want))
	}
	t.Logf("%d flows, %d series, %d points (one per tag set and 1m bin) after %d refreshes of 2s", tot.Flows, len(got), points, int(time.Since(begin)/(2*time.Second)))
}

// protoNumber turns pmacct's protocol name in print output back into the
// number outputs.influxdb writes.
func protoNumber(v any) string {
	switch fmt.Sprint(v) {
	case "tcp":
		return "6"
	case "udp":
		return "17"
	case "icmp":
		return "1"
	case "icmpv6", "ipv6-icmp":
		return "58"
	}
	return fmt.Sprint(v)
}

// num reads a JSON number (InfluxDB answers sums as floats).
func num(v any) uint64 {
	f, _ := strconv.ParseFloat(fmt.Sprint(v), 64)
	return uint64(f)
}

// TestOutageLosesNothing stops InfluxDB for 15 s in the middle of a run and
// starts it again: points wait in memory and spool files, and the totals
// are exact afterwards.
func TestOutageLosesNothing(t *testing.T) {
	s, influxd := influxtest.OwnInfluxDB(t)
	db := fmt.Sprintf("flowline_outage_%d", time.Now().UnixNano())
	s.CreateDB(t, db)
	dir := t.TempDir()
	port := testbin.FreeUDPPort(t)
	maddr := fmt.Sprintf("127.0.0.1:%d", testbin.FreeTCPPort(t))
	// A small memory buffer, so that the outage also fills spool files;
	// tags with ports so that a refresh has many points.
	c := run(t, dir, collectorTOML(dir, port, maddr, influxTOML(s, db, `  buffer_points = 2000
  batch_size = 1000
  timeout = "2s"
  tags = ["peer_src_ip", "proto", "dst_port"]`)), s)
	type result struct {
		tot flowgen.Totals
		err error
	}
	res := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		tot, err := flowgen.Run(ctx, flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 9,
			Duration: 35 * time.Second, Rate: 5000, Seed: 78, SourceIDs: 2, HostPool: 5000})
		res <- result{tot, err}
	}()
	time.Sleep(8 * time.Second)
	influxd("stop")
	stopped := time.Now()
	time.Sleep(12 * time.Second)
	spooled := testbin.Metric(t, maddr, "flowline_influxdb_spool_bytes")
	buffered := testbin.Metric(t, maddr, "flowline_influxdb_buffer_points")
	time.Sleep(15*time.Second - time.Since(stopped))
	influxd("start")
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	time.Sleep(4 * time.Second)
	dropped := testbin.Metric(t, maddr, "flowline_influxdb_dropped_points_total")
	retries := testbin.Metric(t, maddr, "flowline_influxdb_retries_total")
	c.Stop()
	p, b, _ := s.Sums(t, db, "flows")
	t.Logf("during the outage: %v points in memory, %v bytes spooled; %v retries, %v dropped", buffered, spooled, retries, dropped)
	if p != r.tot.FlowPackets || b != r.tot.FlowBytes {
		t.Fatalf("after a 15 s outage: %d packets, %d bytes; flowgen sent %d, %d\n%s", p, b, r.tot.FlowPackets, r.tot.FlowBytes, c.Log())
	}
	if spooled == 0 {
		t.Errorf("the outage did not reach the spool (buffer_points = 2000)")
	}
}

// TestConfigCheckWarnsAboutAddressTags: `flowline config check` accepts a
// config with an address tag but warns what it costs; without it, no
// warning.
func TestConfigCheckWarnsAboutAddressTags(t *testing.T) {
	if flowlineBin == "" {
		t.Skip("end-to-end test: skipped with -short")
	}
	dir := t.TempDir()
	check := func(tags string) (string, error) {
		cfg := collectorTOML(dir, 9995, "", fmt.Sprintf("[[outputs.influxdb]]\n  bucket = \"flows\"\n  tags = %s\n", tags))
		path := filepath.Join(dir, "flowline.toml")
		os.WriteFile(path, []byte(cfg), 0o644)
		out, err := exec.Command(flowlineBin, "config", "check", path).CombinedOutput()
		return string(out), err
	}
	out, err := check(`["peer_src_ip", "src_host", "proto"]`)
	if err != nil || !strings.Contains(out, "warning:") || !strings.Contains(out, "flowline.toml:") ||
		!strings.Contains(out, "outputs.influxdb") || !strings.Contains(out, "src_host is an address") || !strings.Contains(out, "series") {
		t.Fatalf("config check with an address tag: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	out, err = check(`["peer_src_ip", "proto"]`)
	if err != nil || strings.Contains(out, "warning") {
		t.Fatalf("config check without address tags: %v\n%s", err, out)
	}
}

// TestBadConfigOneClearLine: a token the server refuses and a database it
// does not have stop flowline at start with one error line that says what
// to fix; an unreachable server does not (it buffers).
func TestBadConfigOneClearLine(t *testing.T) {
	s := influxtest.InfluxDB(t)
	if flowlineBin == "" {
		t.Skip("end-to-end test: skipped with -short")
	}
	const db = "flowline_badcfg"
	s.CreateDB(t, db)
	for _, tc := range []struct{ name, token, db, want string }{
		{"wrong token", "flowline:wrong", db, "refused the token"},
		{"missing database", s.Token, "flowline_nonexistent", `has no bucket "flowline_nonexistent/autogen"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bad := influxtest.Server{URL: s.URL, Token: tc.token}
			path := filepath.Join(dir, "flowline.toml")
			os.WriteFile(path, []byte(collectorTOML(dir, testbin.FreeUDPPort(t), "", influxTOML(s, tc.db, ""))), 0o644)
			c, err := testbin.Launch(t, testbin.Options{Dir: dir, Args: []string{"run", "--config", path},
				Env: []string{"FLOWLINE_TEST_INFLUXDB_TOKEN=" + bad.Token}, StartTimeout: 30 * time.Second})
			if err == nil {
				c.Stop()
				t.Fatalf("flowline started with a %s", tc.name)
			}
			var errLines []string
			for _, l := range strings.Split(err.Error(), "\n") {
				if strings.Contains(l, "level=ERROR") {
					errLines = append(errLines, strings.ReplaceAll(l, `\"`, `"`))
				}
			}
			if len(errLines) != 1 || !strings.Contains(errLines[0], tc.want) || !strings.Contains(errLines[0], "outputs.influxdb") {
				t.Fatalf("want one error line saying %q (naming outputs.influxdb), got:\n%s", tc.want, err)
			}
			t.Logf("%s", errLines[0])
		})
	}
}
