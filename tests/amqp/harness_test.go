// Package amqp tests the two-tier deployment through the real binary and a
// real RabbitMQ broker (scripts/rabbitmq.sh): edge collectors publish with
// outputs.amqp, a central writer consumes with inputs.amqp into duckdb, and
// the stored totals equal what flowgen sent, through broker restarts and
// consumer crashes. pmacct's nfacctd publishes to the same broker for the
// drop-in checks.
package amqp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/internal/testamqp"
	"github.com/flowline/flowline/internal/testbin"
)

var flowlineBin string

func TestMain(m *testing.M) {
	flowlineBin = testbin.BuildForMain()
	os.Exit(m.Run())
}

// tier is one running flowline process of a test.
type tier struct {
	*testbin.Process
	dir, config, metrics string
}

// names is a test's exchange and queue.
type names struct{ exchange, queue string }

func newNames() names { return names{testamqp.Name("flows"), testamqp.Name("central")} }

// edgeConfig is netflow -> aggregate (5-tuple, 1m bins) -> outputs.amqp.
func edgeConfig(br testamqp.Broker, n names, udpPort, metricsPort int, refresh, output string) string {
	// max_buffer: each refresh of the aggregate is a burst of record
	// batches queued before an output that waits for the broker's
	// confirms; on a busy 2-core machine the default budget (inputs drop
	// beyond an eighth of it) made the input drop datagrams now and then.
	return fmt.Sprintf(`[agent]
  data_dir = "./data"
  metrics_address = "127.0.0.1:%d"
  max_buffer = "1GiB"

[[inputs.netflow]]
  address = "127.0.0.1:%d"
  read_buffer = "64MiB"

[[processors.aggregate]]
  primitives = ["src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"]
  history = "1m"
  refresh = %q
  time = "arrival"

[[outputs.amqp]]
  url = [%q]
  exchange = %q
  routing_key = "acct"
  persistent = true
  timestamps_utc = true
  confirm_timeout = "5s"
  connect_timeout = "2s"
%s
`, metricsPort, udpPort, refresh, br.URL, n.exchange, output)
}

// centralConfig is inputs.amqp -> outputs (duckdb by default).
func centralConfig(br testamqp.Broker, n names, metricsPort int, outputs string) string {
	if outputs == "" {
		outputs = "[[outputs.duckdb]]\n"
	}
	return fmt.Sprintf(`[agent]
  data_dir = "./data"
  metrics_address = "127.0.0.1:%d"

[[inputs.amqp]]
  url = [%q]
  exchange = %q
  queue = %q
  binding_key = "acct"
  prefetch = 32
  timestamps_utc = true

%s
`, metricsPort, br.URL, n.exchange, n.queue, outputs)
}

// start runs flowline with config in dir.
func start(t testing.TB, dir, config string, metricsPort int) *tier {
	t.Helper()
	p := testbin.Start(t, dir, config)
	return &tier{Process: p, dir: dir, config: filepath.Join(dir, "flowline.toml"), metrics: fmt.Sprintf("127.0.0.1:%d", metricsPort)}
}

// startCentral is start that also waits until the consumer runs (the queue
// is declared and bound).
func startCentral(t *testing.T, dir, config string, metricsPort int) *tier {
	t.Helper()
	c := start(t, dir, config, metricsPort)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(c.Log(), "msg=consuming") {
		if time.Now().After(deadline) {
			t.Fatalf("the central does not consume:\n%s", c.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// queueDepth is the number of ready messages in q.
func queueDepth(t testing.TB, br testamqp.Broker, q string) int {
	t.Helper()
	c, err := amqp091.Dial(br.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	st, err := ch.QueueDeclarePassive(q, true, false, false, false, amqp091.Table{"x-queue-type": "classic"})
	if err != nil {
		t.Fatalf("queue %s: %v", q, err)
	}
	return st.Messages
}

// waitConsumed waits until the queue is empty and the central acked every
// message it received, for a second on end.
func waitConsumed(t *testing.T, br testamqp.Broker, n names, central *tier, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	stable := time.Time{}
	for time.Now().Before(deadline) {
		recv, _ := testbin.TryMetric(t, central.metrics, "flowline_amqp_messages_received_total")
		acked, _ := testbin.TryMetric(t, central.metrics, "flowline_amqp_messages_acked_total")
		bad, _ := testbin.TryMetric(t, central.metrics, "flowline_amqp_bad_messages_total")
		if queueDepth(t, br, n.queue) == 0 && recv > 0 && recv == acked+bad {
			if stable.IsZero() {
				stable = time.Now()
			} else if time.Since(stable) > time.Second {
				return
			}
		} else {
			stable = time.Time{}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the central did not consume everything within %s (queue %d)\n%s", limit, queueDepth(t, br, n.queue), central.Log())
}

// storeTotals are sums over flows_all of the central's duckdb store.
type storeTotals struct{ rows, packets, bytes, keys uint64 }

// query runs `flowline query --format json` against the tier's config.
func query(t *testing.T, tr *tier, sql string) []map[string]any {
	t.Helper()
	cmd := exec.Command(flowlineBin, "query", "--config", tr.config, "--format", "json", sql)
	cmd.Dir = tr.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("flowline query: %v\n%s", err, errb.String())
	}
	dec := json.NewDecoder(&out)
	dec.UseNumber()
	var rows []map[string]any
	if err := dec.Decode(&rows); err != nil {
		t.Fatalf("query output: %v", err)
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

// totals sums the central's store: rows, packets, bytes, and distinct keys
// and bins.
func totals(t *testing.T, central *tier) storeTotals {
	t.Helper()
	rows := query(t, central, `SELECT count(*) AS n, coalesce(sum(packets), 0) AS p, coalesce(sum(bytes), 0) AS b,
		count(DISTINCT (src_host, dst_host, src_port, dst_port, proto, tcpflags, stamp_inserted)) AS k FROM flows_all`)
	r := rows[0]
	return storeTotals{num(t, r["n"]), num(t, r["p"]), num(t, r["b"]), num(t, r["k"])}
}

// flowgenConfig sends n flows to port at rate flows/s with a fixed seed.
func flowgenConfig(port int, n, rate uint64, seed int64) flowgen.Config {
	return flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 9, Flows: n, Rate: rate,
		Seed: seed, SourceIDs: 2, HostPool: 2000}
}

func contains(log, s string) bool { return strings.Contains(log, s) }

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
