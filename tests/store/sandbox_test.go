package store

import (
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/plugins/outputs/duckdb"
)

// apiToken is the test's store API token (from ${FLOWLINE_API_TOKEN}).
const apiToken = "test-token-0123456789abcdef"

// escapes are statements a local user might send to read files or change
// the store, each with a word its refusal must contain.
func escapes(outsideParquet, outsideCSV string) []struct{ sql, want string } {
	return []struct{ sql, want string }{
		{"SELECT * FROM read_text('/etc/shadow')", "Permission Error"},
		{"SELECT * FROM read_text('/etc/passwd')", "Permission Error"},
		{"SELECT * FROM read_blob('/proc/self/environ')", "Permission Error"},
		{fmt.Sprintf("SELECT * FROM read_csv(%s)", sqlQuote(outsideCSV)), "Permission Error"},
		{fmt.Sprintf("SELECT * FROM read_parquet(%s)", sqlQuote(outsideParquet)), "Permission Error"},
		{fmt.Sprintf("SELECT * FROM %s", sqlQuote(outsideParquet)), "Permission Error"},
		{"SELECT * FROM read_text('data/../../../../../../etc/passwd')", "Permission Error"},
		{"SELECT * FROM glob('/etc/*')", "Permission Error"},
		{"ATTACH '/tmp/x.duckdb' AS x", "ATTACH refused"},
		{"INSTALL httpfs", "INSTALL refused"},
		{"LOAD httpfs", "LOAD refused"},
		{"SET enable_external_access = true", "SET refused"},
		{"RESET enable_external_access", "RESET refused"},
		{"PRAGMA enable_profiling", "PRAGMA refused"},
		{"/* hidden */ PRAGMA version", "PRAGMA refused"},
		{fmt.Sprintf("COPY (SELECT 1) TO %s", sqlQuote(outsideCSV+".out")), "COPY refused"},
		{"EXPORT DATABASE '/tmp/flowline-export'", "EXPORT refused"},
		{"EXPLAIN ANALYZE DELETE FROM flows", "EXPLAIN refused"},
		{"DELETE FROM flows", "DELETE refused"},
		{"CREATE TABLE x AS SELECT 1", "CREATE refused"},
		{"SELECT 1; DROP TABLE flows", "prepare"},
		{"SELECT * FROM query('DELETE FROM flows')", "SELECT"},
	}
}

func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TestQuerySandbox runs the store's query API and the CLI's direct reads
// against a local user who tries to read files outside the store, write
// files, load extensions or change settings: every attempt is refused with
// a clear message, while `flowline query`, `top` and `stats` answer on hot
// and compressed data through a running collector (with its bearer token)
// and on the file after it stopped; a runaway query is interrupted after
// query_timeout and a long answer is cut at query_max_rows.
func TestQuerySandbox(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	// Files outside the store that DuckDB could read if unconfined.
	outside := t.TempDir()
	outsideCSV := filepath.Join(outside, "secret.csv")
	writeFile(t, outsideCSV, "secret\n42\n")
	outsideParquet := filepath.Join(outside, "secret.parquet")
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("COPY (SELECT 42 AS secret) TO " + sqlQuote(outsideParquet) + " (FORMAT parquet)"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	udp, mport := freeUDPPort(t), freeTCPPort(t)
	cfg := filepath.Join(dir, "flowline.toml")
	writeFile(t, cfg, storeConfig(udp, mport, "1s", `  api_token = "${FLOWLINE_API_TOKEN}"
  query_timeout = "1s"
  query_max_rows = 5
  [outputs.duckdb.lifecycle]
    compress_after = "0s"
    check_every = "1h"`))
	env := []string{"FLOWLINE_API_TOKEN=" + apiToken}
	c := start(t, dir, env, "--config", cfg)
	target := fmt.Sprintf("127.0.0.1:%d", udp)
	a := send(t, flowgen.Config{Target: target, Version: 10, Flows: 50_000, Rate: 100_000, Seed: 11})
	time.Sleep(2500 * time.Millisecond) // two refreshes

	// Without the token the API refuses, even from loopback.
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d%s", mport, duckdb.APIPath("duckdb", "query")), "application/json", strings.NewReader(`{"sql": "SELECT 1"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "bearer token") {
		t.Fatalf("API without the token: %d %s", resp.StatusCode, body)
	}
	// A wrong token is refused too; the CLI (token from the environment)
	// goes through, so it never falls back to the locked file.
	if _, stderr, err := cliErr(dir, []string{"FLOWLINE_API_TOKEN=wrong-token-0123456789"}, "query", "--config", cfg, "SELECT 1"); err == nil || !strings.Contains(stderr, "bearer token") {
		t.Fatalf("a wrong token: %v %s", err, stderr)
	}

	check := func(when string) {
		t.Helper()
		for _, e := range escapes(outsideParquet, outsideCSV) {
			out, stderr, err := cliErr(dir, env, "query", "--config", cfg, e.sql)
			if err == nil || !strings.Contains(stderr, e.want) || strings.Contains(out, "42") || strings.Contains(out, "root:") {
				t.Errorf("%s: %q: want a refusal with %q; err %v\nstdout %s\nstderr %s", when, e.sql, e.want, err, out, stderr)
			}
		}
		// A runaway query is interrupted.
		start := time.Now()
		_, stderr, err := cliErr(dir, env, "query", "--config", cfg, "SELECT count(*) FROM range(1000000) a, range(1000000) b WHERE a.range * b.range % 7 = 3")
		if err == nil || !strings.Contains(stderr, "query_timeout") || time.Since(start) > 20*time.Second {
			t.Errorf("%s: runaway query after %s: %v %s", when, time.Since(start), err, stderr)
		}
		// A long answer is cut at query_max_rows and says so.
		out, stderr, err := cliErr(dir, env, "query", "--config", cfg, "--format", "json", "SELECT range AS n FROM range(10)")
		if err != nil || len(decodeRows(t, out)) != 5 || !strings.Contains(stderr, "cut at 5 rows") {
			t.Errorf("%s: row limit: %v\n%s\n%s", when, err, out, stderr)
		}
		// The store's own views still read the archive inside the sandbox.
		if got := queryTotals(t, dir, env, "flows_all", "--config", cfg); got.Packets != a.FlowPackets || got.Flows != a.Flows {
			t.Errorf("%s: flows_all %+v, sent %d flows, %d packets", when, got, a.Flows, a.FlowPackets)
		}
		if out := cli(t, dir, env, "top", "--config", cfg, "--by", "dst_port", "--since", "24h"); !strings.Contains(out, "(5 rows)") {
			t.Errorf("%s: top: %s", when, out)
		}
		if out := cli(t, dir, env, "stats", "--config", cfg); !strings.Contains(out, fmt.Sprintf("Flows              %d", a.Flows)) {
			t.Errorf("%s: stats: %s", when, out)
		}
	}
	check("running collector, hot rows")
	if out := cli(t, dir, env, "compact", "--config", cfg, "--now"); !strings.Contains(out, "running collector") {
		t.Fatalf("compact did not go through the collector: %s", out)
	}
	if hot := queryTotals(t, dir, env, "flows", "--config", cfg); hot.Rows != 0 {
		t.Fatalf("hot rows after compaction: %d", hot.Rows)
	}
	check("running collector, compressed rows")
	c.Stop()
	if strings.Contains(c.Log(), "level=ERROR") {
		t.Errorf("collector logged errors:\n%s", c.Log())
	}
	check("stopped collector, compressed rows (file opened by the CLI)")
	if _, err := os.Stat("/tmp/flowline-export"); err == nil {
		t.Error("EXPORT DATABASE wrote /tmp/flowline-export")
	}
}
