// Package mysql tests outputs.mysql end to end against a real MariaDB (the one
// scripts/mariadb.sh runs): flowgen -> flowline -> MariaDB with exact totals,
// the drop-in comparison with nfacctd's mysql plugin, a database outage in
// the middle of a run, and configuration errors.
package mysql

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// flowlineBin is the binary under test, built once by TestMain.
var flowlineBin string

func TestMain(m *testing.M) {
	short := false
	for _, a := range os.Args {
		if a == "-test.short=true" || a == "-test.short" {
			short = true
		}
	}
	dir, err := os.MkdirTemp("", "flowline-mysql")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if !short {
		flowlineBin = filepath.Join(dir, "flowline")
		cmd := exec.Command("go", "build", "-o", flowlineBin, "./cmd/flowline")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build flowline: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// server is a MariaDB started by scripts/mariadb.sh.
type server struct {
	host, user, password string
	port                 int
	dsn                  string
	dir                  string
}

func readEnv(dir string) map[string]string {
	env := map[string]string{}
	f, err := os.Open(filepath.Join(dir, "env"))
	if err != nil {
		return env
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

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

// mysqlTOML is an [[outputs.mysql]] table for database db.
func (s server) mysqlTOML(db, extra string) string {
	return fmt.Sprintf(`[[outputs.mysql]]
  host = %q
  port = %d
  user = %q
  password = "${FLOWLINE_TEST_MYSQL_PASSWORD}"
  database = %q
  create_table = true
  optimize_clauses = true
  primitives = ["src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"]
%s
`, s.host, s.port, s.user, db, extra)
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// collector is a running flowline process.
type collector struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

// runFlowline writes config to dir and runs `flowline run --config`; it
// returns when the pipeline runs, or with the error output when it exits.
func runFlowline(t *testing.T, dir, config string, s server) (*collector, error) {
	t.Helper()
	path := filepath.Join(dir, "flowline.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &collector{t: t, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	c.cmd = exec.Command(flowlineBin, "run", "--config", path)
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(), "FLOWLINE_TEST_MYSQL_PASSWORD="+s.password)
	c.cmd.Stderr = c.stderr
	c.cmd.Stdout = io.Discard
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(c.stderr.String(), "pipeline running") {
		select {
		case err := <-c.done:
			c.done <- err
			return nil, fmt.Errorf("flowline exited at start (%v):\n%s", err, c.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("flowline did not start within 30s:\n%s", c.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c, nil
}

// stop sends SIGTERM and requires a clean exit.
func (c *collector) stop() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	select {
	case err := <-c.done:
		if err != nil {
			c.t.Fatalf("flowline exited with %v after SIGTERM:\n%s", err, c.stderr.String())
		}
	case <-time.After(90 * time.Second):
		_ = c.cmd.Process.Kill()
		c.t.Fatalf("flowline did not exit within 90s of SIGTERM:\n%s", c.stderr.String())
	}
}

// metric scrapes one sample value (summed over labels) from /metrics.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
	body, _ := io.ReadAll(conn)
	var sum float64
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name) && len(line) > len(name) && (line[len(name)] == ' ' || line[len(name)] == '{') {
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				sum += v
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("metric %s not exposed", name)
	}
	return sum
}

func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

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
