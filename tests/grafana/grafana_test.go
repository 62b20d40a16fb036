// Package grafana checks the Grafana example (examples/grafana): the
// dashboards are well-formed and point at the provisioned data sources, and
// every panel's query, run against the real InfluxDB 1.8 and MariaDB of the
// test suite after the example's collector config stored flowgen's traffic,
// returns rows. Grafana itself is not available here (no Debian package),
// so the JSON is checked for the fields Grafana needs, not loaded by it.
package grafana

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/internal/influxtest"
	"github.com/flowline/flowline/internal/testbin"
)

var flowlineBin string

func TestMain(m *testing.M) {
	flowlineBin = testbin.BuildForMain()
	os.Exit(m.Run())
}

func example(name string) string {
	return filepath.Join(testbin.RepoRoot(), "examples", "grafana", name)
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID  string `json:"refId"`
		Query  string `json:"query"`
		RawSQL string `json:"rawSql"`
	} `json:"targets"`
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, _ := filepath.Glob(example("dashboards/*.json"))
	if len(files) != 2 {
		t.Fatalf("dashboards: %v, want the InfluxDB and the MySQL one", files)
	}
	var out []dashboard
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, d)
	}
	return out
}

// TestDashboardsWellFormed: what Grafana needs to import a dashboard, and
// data source uids that the provisioning file defines.
func TestDashboardsWellFormed(t *testing.T) {
	prov, err := os.ReadFile(example("provisioning/datasources/flowline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range loadDashboards(t) {
		if d.UID == "" || d.Title == "" || d.SchemaVersion < 30 || len(d.Panels) == 0 {
			t.Errorf("dashboard %q: uid, title, schemaVersion or panels missing", d.Title)
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.Type == "" || len(p.Targets) == 0 {
				t.Errorf("%s / %q: id, gridPos, type or targets missing or repeated", d.Title, p.Title)
			}
			ids[p.ID] = true
			if !strings.Contains(string(prov), "uid: "+p.Datasource.UID+"\n") {
				t.Errorf("%s / %q: data source %q is not provisioned", d.Title, p.Title, p.Datasource.UID)
			}
			for _, tg := range p.Targets {
				if tg.Query == "" && tg.RawSQL == "" {
					t.Errorf("%s / %q: a target without a query", d.Title, p.Title)
				}
			}
		}
	}
}

// mariadb finds the shared MariaDB of the test suite (scripts/mariadb.sh).
func mariadb(t *testing.T) (*sql.DB, map[string]string) {
	t.Helper()
	env := testbin.ReadEnvFile("/tmp/flowline-mariadb/env")
	if dir := os.Getenv("FLOWLINE_MARIADB_DIR"); dir != "" {
		env = testbin.ReadEnvFile(filepath.Join(dir, "env"))
	}
	cfg, err := driver.ParseDSN(env["FLOWLINE_TEST_MYSQL_DSN"])
	if env["FLOWLINE_TEST_MYSQL_DSN"] == "" || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no test MariaDB (scripts/mariadb.sh start); CI must run this test")
		}
		t.Skip("no test MariaDB (scripts/mariadb.sh start)")
	}
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the test MariaDB does not answer; CI must run this test")
		}
		t.Skip("the test MariaDB does not answer")
	}
	return db, env
}

// exampleConfig is examples/grafana/flowline.toml pointed at the test's
// servers: every replaced piece must be in the example, so the test follows
// it.
func exampleConfig(t *testing.T, dir string, port int, influx influxtest.Server, influxDB string, my map[string]string, myDB string) string {
	t.Helper()
	data, err := os.ReadFile(example("flowline.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(data)
	for _, r := range [][2]string{
		{`data_dir = "/var/lib/flowline"`, fmt.Sprintf("data_dir = %q", filepath.Join(dir, "data"))},
		{`metrics_address = "0.0.0.0:9273"`, `metrics_address = ""`},
		{`address = "0.0.0.0:9995"`, fmt.Sprintf(`address = "127.0.0.1:%d"`, port)},
		{`refresh = "10s"`, `refresh = "2s"`},
		{`url = "http://influxdb:8086"`, fmt.Sprintf("url = %q", influx.URL)},
		{`token = "${INFLUX_USER}:${INFLUX_PASSWORD}"`, `token = "${FLOWLINE_TEST_INFLUXDB_TOKEN}"`},
		{`bucket = "flows/autogen"`, fmt.Sprintf(`bucket = "%s/autogen"`, influxDB)},
		{`host = "${MYSQL_HOST}"`, fmt.Sprintf("host = %q\n  port = %s", my["FLOWLINE_TEST_MYSQL_HOST"], my["FLOWLINE_TEST_MYSQL_PORT"])},
		{`user = "pmacct"`, fmt.Sprintf("user = %q", my["FLOWLINE_TEST_MYSQL_USER"])},
		{`password = "${MYSQL_PASSWORD}"`, `password = "${FLOWLINE_TEST_MYSQL_PASSWORD}"`},
		{`database = "pmacct"`, fmt.Sprintf("database = %q", myDB)},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("examples/grafana/flowline.toml lacks %s", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	return cfg
}

// Grafana's macros, as Grafana expands them for "the last day".
var (
	influxMacros = strings.NewReplacer("$timeFilter", "time > now() - 1d", "$__interval", "1m")
	mysqlTime    = regexp.MustCompile(`\$__timeFilter\((\w+)\)`)
)

// TestEveryPanelReturnsRows: the example's collector stores flowgen's
// traffic from two exporters in InfluxDB and MariaDB; every panel's query
// (with Grafana's macros expanded) returns rows.
func TestEveryPanelReturnsRows(t *testing.T) {
	if flowlineBin == "" {
		t.Skip("end-to-end test: skipped with -short")
	}
	influx := influxtest.InfluxDB(t)
	my, myEnv := mariadb(t)
	const influxDB, myDB = "flowline_grafana", "flowline_grafana"
	influx.CreateDB(t, influxDB)
	if _, err := my.Exec("DROP DATABASE IF EXISTS " + myDB); err != nil {
		t.Fatal(err)
	}
	if _, err := my.Exec("CREATE DATABASE " + myDB); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := testbin.FreeUDPPort(t)
	path := filepath.Join(dir, "flowline.toml")
	os.WriteFile(path, []byte(exampleConfig(t, dir, port, influx, influxDB, myEnv, myDB)), 0o644)
	c, err := testbin.Launch(t, testbin.Options{Dir: dir, Args: []string{"run", "--config", path},
		Env:          []string{"FLOWLINE_TEST_INFLUXDB_TOKEN=" + influx.Token, "FLOWLINE_TEST_MYSQL_PASSWORD=" + myEnv["FLOWLINE_TEST_MYSQL_PASSWORD"]},
		StartTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testbin.SendFlows(t, flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 9, Flows: 60_000,
		Rate: 30_000, Seed: 5, Exporters: []string{"127.0.0.1", "127.0.0.2"}, HostPool: 300})
	time.Sleep(3 * time.Second)
	c.Stop()

	for _, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				switch p.Datasource.UID {
				case "flowline-influxdb":
					q := influxMacros.Replace(tg.Query)
					res, err := influx.QueryErr(influxDB, q)
					if err != nil || len(res) == 0 || len(res[0].Values) == 0 {
						t.Errorf("%s / %q: no rows (%v)\n%s", d.Title, p.Title, err, q)
						continue
					}
					t.Logf("%s / %q: %d series, first %v", d.Title, p.Title, len(res), res[0].Values[0])
				case "flowline-mysql":
					q := mysqlTime.ReplaceAllString(tg.RawSQL, "$1 BETWEEN NOW() - INTERVAL 1 DAY AND NOW() + INTERVAL 1 DAY")
					n, err := countRows(my, myDB, q)
					if err != nil || n == 0 {
						t.Errorf("%s / %q: %d rows (%v)\n%s", d.Title, p.Title, n, err, q)
						continue
					}
					t.Logf("%s / %q: %d rows", d.Title, p.Title, n)
				default:
					t.Errorf("%s / %q: unknown data source %q", d.Title, p.Title, p.Datasource.UID)
				}
			}
		}
	}
}

// countRows runs q in database db and counts its rows.
func countRows(db *sql.DB, name, q string) (int, error) {
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "USE "+name); err != nil {
		return 0, err
	}
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}
