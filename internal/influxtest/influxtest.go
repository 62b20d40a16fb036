// Package influxtest finds the InfluxDB 1.8 and VictoriaMetrics servers that
// scripts/influxdb.sh and scripts/victoriametrics.sh run for the tests, and
// asks them for what a test checks (sums, series). Without a server a test
// skips, except under CI=true, where it fails: CI must run these tests.
package influxtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/testbin"
)

// Server is a running InfluxDB 1.8 (Token is "user:password") or
// VictoriaMetrics (no token).
type Server struct {
	URL   string
	Token string
	// Dir and Script are the server's directory and its start/stop script.
	Dir, Script string
}

// readEnv reads dir/env, which the server's script writes.
func readEnv(dir string) map[string]string { return testbin.ReadEnvFile(filepath.Join(dir, "env")) }

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI must run the InfluxDB tests")
	}
	t.Skip(msg)
}

// alive reports whether GET url answers 2xx within 3 s.
func alive(u string) bool {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// InfluxDB is the shared InfluxDB 1.8 of the test suite.
func InfluxDB(t testing.TB) Server {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	dir := os.Getenv("FLOWLINE_INFLUXDB_DIR")
	if dir == "" {
		dir = "/tmp/flowline-influxdb"
	}
	env := readEnv(dir)
	s := Server{URL: env["FLOWLINE_TEST_INFLUXDB_URL"], Token: env["FLOWLINE_TEST_INFLUXDB_TOKEN"], Dir: dir, Script: env["FLOWLINE_TEST_INFLUXDB_SCRIPT"]}
	if s.URL == "" || !alive(s.URL+"/ping") {
		missing(t, "no test InfluxDB answers (scripts/influxdb.sh start)")
	}
	return s
}

// VictoriaMetrics is the shared VictoriaMetrics of the test suite.
func VictoriaMetrics(t testing.TB) Server {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	dir := os.Getenv("FLOWLINE_VM_DIR")
	if dir == "" {
		dir = "/tmp/flowline-victoriametrics"
	}
	env := readEnv(dir)
	s := Server{URL: env["FLOWLINE_TEST_VM_URL"], Dir: dir, Script: env["FLOWLINE_TEST_VM_SCRIPT"]}
	if s.URL == "" || !alive(s.URL+"/health") {
		missing(t, "no test VictoriaMetrics answers (scripts/victoriametrics.sh start)")
	}
	return s
}

// OwnInfluxDB starts an InfluxDB of the test's own (its own directory and
// ports) with scripts/influxdb.sh, so that stopping it disturbs no other
// test; the returned function runs the script ("stop", "start").
func OwnInfluxDB(t testing.TB) (Server, func(string)) {
	t.Helper()
	shared := InfluxDB(t)
	dir := t.TempDir()
	run := func(cmd string) {
		t.Helper()
		c := exec.Command(shared.Script, cmd)
		c.Env = append(os.Environ(), "FLOWLINE_INFLUXDB_DIR="+dir)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("scripts/influxdb.sh %s: %v\n%s", cmd, err, out)
		}
	}
	run("start")
	t.Cleanup(func() { run("stop") })
	env := readEnv(dir)
	return Server{URL: env["FLOWLINE_TEST_INFLUXDB_URL"], Token: env["FLOWLINE_TEST_INFLUXDB_TOKEN"], Dir: dir, Script: shared.Script}, run
}

// Query runs InfluxQL statements against database db and returns the first
// result's series.
func (s Server) Query(t testing.TB, db, q string) []Series {
	t.Helper()
	res, err := s.QueryErr(db, q)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Series is one series of an InfluxQL result.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// QueryErr is Query returning its error.
func (s Server) QueryErr(db, q string) ([]Series, error) {
	form := url.Values{"q": {q}}
	if db != "" {
		form.Set("db", db)
	}
	req, err := http.NewRequest("POST", s.URL+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if u, p, ok := strings.Cut(s.Token, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	c := http.Client{Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Results []struct {
			Series []Series `json:"series"`
			Error  string   `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("query %q: %s: %s", q, resp.Status, body)
	}
	if out.Error != "" {
		return nil, fmt.Errorf("query %q: %s", q, out.Error)
	}
	if len(out.Results) == 0 {
		return nil, nil
	}
	if out.Results[0].Error != "" {
		return nil, fmt.Errorf("query %q: %s", q, out.Results[0].Error)
	}
	return out.Results[0].Series, nil
}

// CreateDB drops and creates database db.
func (s Server) CreateDB(t testing.TB, db string) {
	t.Helper()
	s.Query(t, "", fmt.Sprintf("DROP DATABASE %q", db))
	s.Query(t, "", fmt.Sprintf("CREATE DATABASE %q", db))
}

// Sums is SELECT sum(packets), sum(bytes), count(packets) over a measurement.
func (s Server) Sums(t testing.TB, db, measurement string) (packets, bytes, points uint64) {
	t.Helper()
	res := s.Query(t, db, fmt.Sprintf("SELECT sum(packets), sum(bytes), count(packets) FROM %q", measurement))
	if len(res) == 0 || len(res[0].Values) == 0 {
		return 0, 0, 0
	}
	v := res[0].Values[0]
	return num(v[1]), num(v[2]), num(v[3])
}

func num(v any) uint64 {
	switch x := v.(type) {
	case float64:
		return uint64(x)
	case json.Number:
		n, _ := strconv.ParseUint(x.String(), 10, 64)
		return n
	case string:
		f, _ := strconv.ParseFloat(x, 64)
		return uint64(f)
	}
	return 0
}

// VMBinSum is the sum, over every series and bin of metric, of the bin's
// final running total: max_over_time over each bin (bins of binLen, the
// aggregate's history, aligned to the epoch) from a range query whose steps
// are the bins' starts. VictoriaMetrics keeps every rewrite of a point, and
// running totals only grow, so the maximum is the total.
func (s Server) VMBinSum(t testing.TB, metric string, from time.Time, binLen time.Duration) uint64 {
	t.Helper()
	step := int64(binLen.Seconds())
	// A step at t takes the window (t-bin, t]: the point at the start t of
	// the bin that begins there (outputs.influxdb writes points at the bin
	// start).
	start := from.Unix() / step * step
	end := time.Now().Unix()/step*step + 2*step
	form := url.Values{"query": {fmt.Sprintf("sum(max_over_time(%s[%ds]))", metric, step)},
		"start": {strconv.FormatInt(start, 10)}, "end": {strconv.FormatInt(end, 10)}, "step": {strconv.FormatInt(step, 10) + "s"}}
	body := s.vmPost(t, "/api/v1/query_range", form)
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Status != "success" {
		t.Fatalf("VictoriaMetrics query_range: %s", body)
	}
	var sum float64
	for _, r := range out.Data.Result {
		for _, v := range r.Values {
			f, _ := strconv.ParseFloat(fmt.Sprint(v[1]), 64)
			sum += f
		}
	}
	return uint64(sum)
}

// vmPost makes what was written searchable (VictoriaMetrics buffers for a
// second), then posts form to path and returns the answer's body.
func (s Server) vmPost(t testing.TB, path string, form url.Values) []byte {
	t.Helper()
	c := http.Client{Timeout: 60 * time.Second}
	if resp, err := c.Get(s.URL + "/internal/force_flush"); err == nil {
		resp.Body.Close()
	}
	resp, err := c.PostForm(s.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("VictoriaMetrics %s: %s: %s", path, resp.Status, body)
	}
	return body
}
