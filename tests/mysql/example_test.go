package mysql

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
)

// TestExampleDeployment runs examples/mysql as written (schema.sql, then
// flowline.toml with the server's address, a free port and a temporary data
// directory swapped in) and checks the totals.
func TestExampleDeployment(t *testing.T) {
	s := testServer(t)
	ex := filepath.Join(repoRoot(), "examples", "mysql")
	schema, err := os.ReadFile(filepath.Join(ex, "schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(ex, "flowline.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s.dropDB(t, "pmacct")
	root := s.open(t, "")
	for _, stmt := range strings.Split(string(schema), ";") {
		var lines []string
		for _, l := range strings.Split(stmt, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		q := strings.TrimSpace(strings.Join(lines, "\n"))
		if q == "" || strings.HasPrefix(q, "GRANT") {
			continue // the test server's user has every privilege
		}
		if strings.HasPrefix(q, "USE ") {
			continue
		}
		q = strings.Replace(q, "CREATE TABLE IF NOT EXISTS acct", "CREATE TABLE IF NOT EXISTS pmacct.acct", 1)
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("schema.sql: %v\n%s", err, q)
		}
	}
	dir := t.TempDir()
	port := freeUDPPort(t)
	cfg := string(conf)
	for from, to := range map[string]string{
		`data_dir = "/var/lib/flowline"`: fmt.Sprintf("data_dir = %q", filepath.Join(dir, "data")),
		`metrics_address = ":9273"`:      `metrics_address = ""`,
		`address = ":9995"`:              fmt.Sprintf(`address = "127.0.0.1:%d"`, port),
		`host = "${MYSQL_HOST}"`:         fmt.Sprintf("host = %q", s.host),
		`port = 3306`:                    fmt.Sprintf("port = %d", s.port),
		`user = "pmacct"`:                fmt.Sprintf("user = %q", s.user),
		`password = "${MYSQL_PASSWORD}"`: `password = "${FLOWLINE_TEST_MYSQL_PASSWORD}"`,
		`refresh = "30s"`:                `refresh = "2s"`,
	} {
		if !strings.Contains(cfg, from) {
			t.Fatalf("examples/mysql/flowline.toml no longer has %q", from)
		}
		cfg = strings.Replace(cfg, from, to, 1)
	}
	c, err := runFlowline(t, dir, cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	tot := send(t, flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 9, Flows: 50_000, Rate: 50_000, Seed: 5})
	time.Sleep(500 * time.Millisecond)
	c.Stop()
	rows, pkts, bytes := sums(t, s.open(t, "pmacct"), "acct_all")
	if pkts != tot.FlowPackets || bytes != tot.FlowBytes {
		t.Fatalf("acct_all: %d packets, %d bytes; flowgen sent %d, %d\n%s", pkts, bytes, tot.FlowPackets, tot.FlowBytes, c.Log())
	}
	t.Logf("example deployment: %d rows, exact totals", rows)
}
