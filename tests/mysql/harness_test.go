// Package mysql tests outputs.mysql end to end against a real MariaDB (the one
// scripts/mariadb.sh runs): flowgen -> flowline -> MariaDB with exact totals,
// the drop-in comparison with nfacctd's mysql plugin, a database outage in
// the middle of a run, and configuration errors.
package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/testbin"
	driver "github.com/go-sql-driver/mysql"
)

// flowlineBin is the binary under test, built once by TestMain ("" under -short).
var flowlineBin string

func TestMain(m *testing.M) {
	flowlineBin = testbin.BuildForMain()
	os.Exit(m.Run())
}

func repoRoot() string { return testbin.RepoRoot() }

// server is a MariaDB started by scripts/mariadb.sh.
type server struct {
	host, user, password string
	port                 int
	dsn                  string
	dir                  string
}

func readEnv(dir string) map[string]string { return testbin.ReadEnvFile(filepath.Join(dir, "env")) }

func fromEnv(env map[string]string, dir string) server {
	port, _ := strconv.Atoi(env["FLOWLINE_TEST_MYSQL_PORT"])
	return server{host: env["FLOWLINE_TEST_MYSQL_HOST"], port: port, user: env["FLOWLINE_TEST_MYSQL_USER"],
		password: env["FLOWLINE_TEST_MYSQL_PASSWORD"], dsn: env["FLOWLINE_TEST_MYSQL_DSN"], dir: dir}
}

// testServer finds the shared test database: under CI=true its absence fails
// the test, elsewhere the test skips (as with -short).
func testServer(t *testing.T) server {
	t.Helper()
	if flowlineBin == "" {
		t.Skip("end-to-end test: skipped with -short")
	}
	dir := os.Getenv("FLOWLINE_MARIADB_DIR")
	if dir == "" {
		dir = "/tmp/flowline-mariadb"
	}
	s := fromEnv(readEnv(dir), dir)
	if s.dsn == "" || s.ping() != nil {
		msg := "no test MariaDB answers (scripts/mariadb.sh start)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI must run the MySQL tests")
		}
		t.Skip(msg)
	}
	return s
}

func (s server) ping() error {
	db, err := s.openErr("")
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func (s server) openErr(database string) (*sql.DB, error) {
	c, err := driver.ParseDSN(s.dsn)
	if err != nil {
		return nil, err
	}
	c.DBName = database
	conn, err := driver.NewConnector(c)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

func (s server) open(t *testing.T, database string) *sql.DB {
	t.Helper()
	db, err := s.openErr(database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dropDB removes a test database (and makes sure it is gone).
func (s server) dropDB(t *testing.T, name string) {
	t.Helper()
	if _, err := s.open(t, "").Exec("DROP DATABASE IF EXISTS `" + name + "`"); err != nil {
		t.Fatal(err)
	}
}

// mysqlTOML is an [[outputs.mysql]] table for database db, with
// optimize_clauses and no primitives: the output learns them from the
// aggregate upstream.
func (s server) mysqlTOML(db, extra string) string {
	return fmt.Sprintf(`[[outputs.mysql]]
  host = %q
  port = %d
  user = %q
  password = "${FLOWLINE_TEST_MYSQL_PASSWORD}"
  database = %q
  create_table = true
  optimize_clauses = true
%s
`, s.host, s.port, s.user, db, extra)
}

func freeUDPPort(t *testing.T) int { return testbin.FreeUDPPort(t) }

// runFlowline writes config to dir and runs `flowline run --config`; it
// returns when the pipeline runs, or with the error output when it exits.
func runFlowline(t *testing.T, dir, config string, s server) (*testbin.Process, error) {
	t.Helper()
	path := filepath.Join(dir, "flowline.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return testbin.Launch(t, testbin.Options{Dir: dir, Args: []string{"run", "--config", path},
		Env: []string{"FLOWLINE_TEST_MYSQL_PASSWORD=" + s.password}, StartTimeout: 30 * time.Second})
}

// metric scrapes one sample value (summed over labels) from /metrics.
func metric(t *testing.T, addr, name string) float64 { return testbin.Metric(t, addr, name) }

func freeTCPAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", testbin.FreeTCPPort(t)) }

func sums(t *testing.T, db *sql.DB, table string) (rows, packets, bytes uint64) {
	t.Helper()
	err := db.QueryRow("SELECT COUNT(*), COALESCE(SUM(packets),0), COALESCE(SUM(bytes),0) FROM "+table).Scan(&rows, &packets, &bytes)
	if err != nil {
		t.Fatal(err)
	}
	return
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
