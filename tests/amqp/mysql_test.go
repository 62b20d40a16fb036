package amqp

import (
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/flowline/flowline/internal/testamqp"
	"github.com/flowline/flowline/internal/testbin"
)

// mariadb is the test MariaDB of scripts/mariadb.sh (its env file).
type mariadb struct{ dsn, host, port, user, password string }

func findMariaDB(t *testing.T) mariadb {
	t.Helper()
	dir := os.Getenv("FLOWLINE_MARIADB_DIR")
	if dir == "" {
		dir = "/tmp/flowline-mariadb"
	}
	env := testbin.ReadEnvFile(dir + "/env")
	m := mariadb{env["FLOWLINE_TEST_MYSQL_DSN"], env["FLOWLINE_TEST_MYSQL_HOST"], env["FLOWLINE_TEST_MYSQL_PORT"], env["FLOWLINE_TEST_MYSQL_USER"], env["FLOWLINE_TEST_MYSQL_PASSWORD"]}
	if m.dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no test MariaDB (scripts/mariadb.sh start); CI must run the MySQL tests")
		}
		t.Skip("no test MariaDB (scripts/mariadb.sh start)")
	}
	return m
}

func (m mariadb) open(t *testing.T, db string) *sql.DB {
	t.Helper()
	c, err := sql.Open("mysql", m.dsn+db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// outputs is an [[outputs.mysql]] table writing pmacct's acct into db.
func (m mariadb) outputs(db string) string {
	return fmt.Sprintf(`[[outputs.mysql]]
  host = %q
  port = %s
  user = %q
  password = %q
  database = %q
  create_table = true
  primitives = ["src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"]
`, m.host, m.port, m.user, m.password, db)
}

// flowgen -> edge -> RabbitMQ -> central -> MariaDB, with the central killed
// twice mid-stream: acct's sums equal flowgen's and every key and bin is
// one row.
func TestCentralMySQLKilled(t *testing.T) {
	br := testamqp.Find(t)
	m := findMariaDB(t)
	db := "flowline_amqp_" + strings.ReplaceAll(testamqp.Name("t")[2:], "-", "")
	root := m.open(t, "")
	if _, err := root.Exec("DROP DATABASE IF EXISTS `" + db + "`"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Exec("DROP DATABASE IF EXISTS `" + db + "`") })
	n := newNames()
	cport, eport, udp := testbin.FreeTCPPort(t), testbin.FreeTCPPort(t), testbin.FreeUDPPort(t)
	cdir := t.TempDir()
	cconf := centralConfig(br, n, cport, m.outputs(db))
	central := startCentral(t, cdir, cconf, cport)
	edge := start(t, t.TempDir(), edgeConfig(br, n, udp, eport, "1m", `  format = "flowline"
  max_records = 2000`), eport)
	tot := testbin.SendFlows(t, flowgenConfig(udp, 1_000_000, 100_000, 11))
	time.Sleep(300 * time.Millisecond)
	stopped := make(chan struct{})
	go func() { defer close(stopped); edge.Stop() }()
	for kills := 0; kills < 2; kills++ {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			acked, _ := testbin.TryMetric(t, central.metrics, "flowline_amqp_messages_acked_total")
			if acked >= 5 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the central acked nothing\n%s", central.Log())
			}
			time.Sleep(5 * time.Millisecond)
		}
		central.Kill()
		central = startCentral(t, cdir, cconf, cport)
	}
	<-stopped
	waitConsumed(t, br, n, central, 3*time.Minute)
	central.Stop()
	conn := m.open(t, db)
	var rows, keys, packets, bytes uint64
	if err := conn.QueryRow("SELECT COUNT(*), COALESCE(SUM(packets), 0), COALESCE(SUM(bytes), 0) FROM acct").Scan(&rows, &packets, &bytes); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow("SELECT COUNT(*) FROM (SELECT DISTINCT ip_src, ip_dst, port_src, port_dst, tcp_flags, ip_proto, stamp_inserted FROM acct) d").Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if packets != tot.FlowPackets || bytes != tot.FlowBytes {
		t.Fatalf("acct: %d packets, %d bytes in %d rows; flowgen sent %d, %d\n%s", packets, bytes, rows, tot.FlowPackets, tot.FlowBytes, central.Log())
	}
	if rows != keys {
		t.Fatalf("%d rows for %d keys and bins", rows, keys)
	}
	t.Logf("killed twice; %d rows = keys and bins; %d packets, %d bytes exact", rows, packets, bytes)
}
