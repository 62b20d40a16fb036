package mysql

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
)

// collectorTOML is a collector on udpPort aggregating the 5-tuple into 1m
// bins refreshed every 2s, writing to MySQL with outputs (extra) appended.
func collectorTOML(dir string, udpPort int, metricsAddr, outputs string) string {
	return fmt.Sprintf(`[agent]
  data_dir = %q
  metrics_address = %q

[[inputs.netflow]]
  address = "127.0.0.1:%d"
  read_buffer = "64MiB"

[[processors.aggregate]]
  primitives = ["src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"]
  history = "1m"
  refresh = "2s"
  time = "arrival"

%s`, filepath.Join(dir, "data"), metricsAddr, udpPort, outputs)
}

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

// TestEndToEndExactTotals: flowgen -> flowline -> MariaDB over several
// refreshes of the same bins; acct_all's sums equal flowgen's totals, and
// each key and bin is one row (updated, not duplicated).
func TestEndToEndExactTotals(t *testing.T) {
	s := testServer(t)
	const db = "flowline_e2e"
	s.dropDB(t, db)
	dir := t.TempDir()
	port := freeUDPPort(t)
	maddr := freeTCPAddr(t)
	c, err := runFlowline(t, dir, collectorTOML(dir, port, maddr, s.mysqlTOML(db, `
  [outputs.mysql.lifecycle]
    compress_after = "1h"
`)), s)
	if err != nil {
		t.Fatal(err)
	}
	tot := send(t, flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 9, Flows: 400_000,
		Rate: 60_000, Seed: 21, SourceIDs: 2, HostPool: 200})
	time.Sleep(500 * time.Millisecond)
	written := metric(t, maddr, "flowline_mysql_rows_written_total")
	c.Stop()
	conn := s.open(t, db)
	rows, pkts, bytes := sums(t, conn, "acct_all")
	if pkts != tot.FlowPackets || bytes != tot.FlowBytes {
		t.Fatalf("acct_all: %d packets, %d bytes in %d rows; flowgen sent %d packets, %d bytes\n%s",
			pkts, bytes, rows, tot.FlowPackets, tot.FlowBytes, c.Log())
	}
	var distinct uint64
	if err := conn.QueryRow("SELECT COUNT(*) FROM (SELECT DISTINCT ip_src, ip_dst, port_src, port_dst, ip_proto, stamp_inserted FROM acct_all) d").Scan(&distinct); err != nil {
		t.Fatal(err)
	}
	if distinct != rows {
		t.Fatalf("%d rows but %d distinct keys and bins: duplicates instead of updates", rows, distinct)
	}
	if written <= float64(rows) {
		t.Fatalf("%v rows written for %d stored: no bin was refreshed twice (the test should update rows)", written, rows)
	}
	t.Logf("%d flows -> %d rows (%v row writes over the refreshes); %d packets, %d bytes exact", tot.Flows, rows, written, pkts, bytes)
}

// TestEndToEndWithCompaction runs life-cycle passes every second while
// flows arrive (compress_after = "0s", an hourly rollup): rows move to the
// archive while refreshes update them, and every total stays exact.
func TestEndToEndWithCompaction(t *testing.T) {
	s := testServer(t)
	const db = "flowline_e2e_compact"
	s.dropDB(t, db)
	dir := t.TempDir()
	port := freeUDPPort(t)
	c, err := runFlowline(t, dir, collectorTOML(dir, port, "", s.mysqlTOML(db, `
  [outputs.mysql.lifecycle]
    compress_after = "0s"
    check_every = "1s"
    [[outputs.mysql.lifecycle.rollup]]
      after = "0s"
      history = "1h"
      primitives = ["src_host", "dst_host", "proto"]
`)), s)
	if err != nil {
		t.Fatal(err)
	}
	tot := send(t, flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 9, Flows: 300_000,
		Rate: 40_000, Seed: 22, SourceIDs: 2, HostPool: 300})
	time.Sleep(3 * time.Second) // a last pass after the last refresh
	c.Stop()
	conn := s.open(t, db)
	_, pkts, bytes := sums(t, conn, "acct_all")
	if pkts != tot.FlowPackets || bytes != tot.FlowBytes {
		t.Fatalf("acct_all: %d packets, %d bytes; flowgen sent %d, %d\n%s", pkts, bytes, tot.FlowPackets, tot.FlowBytes, c.Log())
	}
	hot, _, _ := sums(t, conn, "acct")
	arch, _, _ := sums(t, conn, "acct_archive")
	if arch == 0 {
		t.Fatalf("nothing was archived\n%s", c.Log())
	}
	// The tier holds what was archived before the watermark; with the
	// shutdown refresh possibly still hot, compare the tier with the archive.
	_, ap, ab := sums(t, conn, "acct_archive")
	_, tp, tb := sums(t, conn, "acct_1h")
	if tp > ap || tb > ab || tp == 0 {
		t.Fatalf("acct_1h holds %d packets, %d bytes; the archive %d, %d", tp, tb, ap, ab)
	}
	t.Logf("%d rows hot, %d archived; tier %d/%d packets of the archive; totals exact", hot, arch, tp, ap)
}
