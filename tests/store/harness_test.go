// Package store runs the real flowline binary against its embedded store:
// flowgen sends flows, the collector stores them in DuckDB, and the tests
// read every total back with `flowline query --format json`, after SIGTERM,
// after `flowline compact --now`, and after kill -9.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/internal/testbin"
)

// flowlineBin is the binary under test, built once by TestMain ("" under -short).
var flowlineBin string

func TestMain(m *testing.M) {
	flowlineBin = testbin.BuildForMain()
	os.Exit(m.Run())
}

func repoRoot() string { return testbin.RepoRoot() }

func needBinary(t *testing.T) { testbin.Flowline(t) }

func freeUDPPort(t *testing.T) int { return testbin.FreeUDPPort(t) }

func freeTCPPort(t *testing.T) int { return testbin.FreeTCPPort(t) }

// start runs `flowline run` in dir with args (e.g. --config FILE) and env,
// and waits until the pipeline runs.
func start(t *testing.T, dir string, env []string, args ...string) *testbin.Process {
	t.Helper()
	p, err := testbin.Launch(t, testbin.Options{Dir: dir, Args: append([]string{"run"}, args...), Env: env})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// cli runs a flowline subcommand in dir and returns its stdout; a non-zero
// exit fails the test.
func cli(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, stderr, err := cliErr(dir, env, args...)
	if err != nil {
		t.Fatalf("flowline %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

func cliErr(dir string, env []string, args ...string) (string, string, error) {
	cmd := exec.Command(flowlineBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// storeTotals are sums over a view.
type storeTotals struct {
	Rows    uint64
	Packets uint64
	Bytes   uint64
	Flows   uint64
}

// queryTotals reads the totals of a view (flows_all by default) with
// `flowline query --format json`; args come before the SQL (--config FILE).
func queryTotals(t *testing.T, dir string, env []string, view string, args ...string) storeTotals {
	t.Helper()
	q := fmt.Sprintf("SELECT count(*) AS n, coalesce(sum(packets), 0) AS packets, coalesce(sum(bytes), 0) AS bytes, coalesce(sum(flows), 0) AS flows FROM %s", view)
	out := cli(t, dir, env, append(append([]string{"query", "--format", "json"}, args...), q)...)
	rows := decodeRows(t, out)
	if len(rows) != 1 {
		t.Fatalf("query returned %d rows: %s", len(rows), out)
	}
	r := rows[0]
	return storeTotals{num(t, r["n"]), num(t, r["packets"]), num(t, r["bytes"]), num(t, r["flows"])}
}

func decodeRows(t *testing.T, out string) []map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var rows []map[string]any
	if err := dec.Decode(&rows); err != nil {
		t.Fatalf("query output is not a JSON array: %v\n%s", err, out)
	}
	return rows
}

func num(t *testing.T, v any) uint64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	u, err := strconv.ParseUint(n.String(), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// send runs flowgen and returns its totals.
func send(t *testing.T, cfg flowgen.Config) flowgen.Totals {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tot, err := flowgen.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("flowgen: %v", err)
	}
	return tot
}

// storeConfig is a collector on loopback ports storing 5-tuples in 1m bins
// with the given lifecycle table (may be "").
func storeConfig(udpPort, metricsPort int, refresh, lifecycle string) string {
	return collectorConfig(udpPort, metricsPort) + fmt.Sprintf(`
[[processors.aggregate]]
  primitives = ["src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"]
  history = "1m"
  refresh = %q

[[outputs.duckdb]]
%s
`, refresh, lifecycle)
}

// collectorConfig is the agent and the netflow input on loopback ports.
func collectorConfig(udpPort, metricsPort int) string {
	return fmt.Sprintf(`
[agent]
  data_dir = "./data"
  metrics_address = "127.0.0.1:%d"

[[inputs.netflow]]
  address = "127.0.0.1:%d"
  read_buffer = "64MiB"
`, metricsPort, udpPort)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
