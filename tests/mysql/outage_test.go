package mysql

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
)

// ownServer starts a MariaDB of the test's own with scripts/mariadb.sh (its
// own data directory and port), so that stopping it disturbs no other test.
func ownServer(t *testing.T) (server, func(string)) {
	t.Helper()
	testServer(t) // skip or fail as the shared server's tests do
	dir := t.TempDir()
	script := filepath.Join(repoRoot(), "scripts", "mariadb.sh")
	run := func(cmd string) {
		t.Helper()
		c := exec.Command(script, cmd)
		c.Env = append(os.Environ(), "FLOWLINE_MARIADB_DIR="+dir)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("scripts/mariadb.sh %s: %v\n%s", cmd, err, out)
		}
	}
	run("start")
	t.Cleanup(func() { run("stop") })
	s := fromEnv(readEnv(dir), dir)
	if s.dsn == "" {
		t.Fatal("scripts/mariadb.sh start wrote no env file")
	}
	return s, run
}

// TestOutageLosesNothing stops MariaDB for 30 s in the middle of a run and
// starts it again: rows wait in memory and spool files, and the totals are
// exact afterwards.
func TestOutageLosesNothing(t *testing.T) {
	s, mariadb := ownServer(t)
	const db = "flowline_outage"
	dir := t.TempDir()
	port := freeUDPPort(t)
	maddr := freeTCPAddr(t)
	// A small memory buffer, so that the outage also fills spool files.
	c, err := runFlowline(t, dir, collectorTOML(dir, port, maddr, s.mysqlTOML(db, `  buffer_rows = 5000
  [outputs.mysql.lifecycle]
    compress_after = "1h"
`)), s)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		tot flowgen.Totals
		err error
	}
	res := make(chan result, 1)
	go func() {
		ctx, cancel := contextWithTimeout(3 * time.Minute)
		defer cancel()
		tot, err := flowgen.Run(ctx, flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 9,
			Duration: 50 * time.Second, Rate: 5000, Seed: 77, SourceIDs: 2, HostPool: 5000})
		res <- result{tot, err}
	}()
	time.Sleep(8 * time.Second)
	mariadb("stop")
	stopped := time.Now()
	time.Sleep(15 * time.Second)
	spool := metric(t, maddr, "flowline_mysql_spool_bytes")
	buffered := metric(t, maddr, "flowline_mysql_buffer_rows")
	time.Sleep(30*time.Second - time.Since(stopped))
	mariadb("start")
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	time.Sleep(3 * time.Second)
	dropped := metric(t, maddr, "flowline_mysql_dropped_rows_total")
	c.Stop()
	_, pkts, bytes := sums(t, s.open(t, db), "acct_all")
	t.Logf("during the outage: %v rows in memory, %v bytes spooled; dropped %v", buffered, spool, dropped)
	if pkts != r.tot.FlowPackets || bytes != r.tot.FlowBytes {
		t.Fatalf("after a 30 s outage: %d packets, %d bytes; flowgen sent %d, %d\n%s", pkts, bytes, r.tot.FlowPackets, r.tot.FlowBytes, c.Log())
	}
	if spool == 0 {
		t.Errorf("the outage did not reach the spool (buffer_rows = 5000)")
	}
}
