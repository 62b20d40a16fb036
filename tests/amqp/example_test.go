package amqp

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/testamqp"
)

// examples/two-tier/run.sh: two edges -> a broker of its own -> a central
// duckdb writer on loopback; the script checks the totals.
func TestTwoTierExample(t *testing.T) {
	testamqp.Find(t) // the broker's packages are installed (and -short skips)
	if _, err := exec.LookPath("jq"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("jq is missing (scripts/deps.sh installs it)")
		}
		t.Skip("the example script needs jq")
	}
	wd, _ := os.Getwd()
	cmd := exec.Command("bash", filepath.Join(wd, "..", "..", "examples", "two-tier", "run.sh"))
	cmd.Env = append(os.Environ(), "FLOWS=100000", "FLOWLINE="+flowlineBin)
	cmd.WaitDelay = 5 * time.Second
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(4 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("run.sh did not finish within 4 minutes:\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "OK: totals exact") {
		t.Fatalf("run.sh: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// The example configurations pass `flowline config check`.
func TestTwoTierConfigsCheck(t *testing.T) {
	if flowlineBin == "" {
		t.Skip("needs the binary")
	}
	wd, _ := os.Getwd()
	files, _ := filepath.Glob(filepath.Join(wd, "..", "..", "examples", "two-tier", "*.toml"))
	if len(files) != 3 {
		t.Fatalf("found %d example configs", len(files))
	}
	for _, f := range files {
		cmd := exec.Command(flowlineBin, "config", "check", f)
		cmd.Env = append(os.Environ(), "DATA_DIR="+t.TempDir(), "METRICS=127.0.0.1:0")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}

// An aggregate between inputs.amqp and the outputs acks messages at
// absorption: `flowline config check` says so (and still accepts it).
func TestConfigCheckWarnsAggregate(t *testing.T) {
	if flowlineBin == "" {
		t.Skip("needs the binary")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "central.toml")
	os.WriteFile(path, []byte(`[agent]
  data_dir = "./data"
[[inputs.amqp]]
  url = "amqp://flowline:flowline@127.0.0.1:5672/"
[[processors.aggregate]]
  primitives = ["src_host", "dst_host"]
  history = "1h"
[[outputs.duckdb]]
`), 0o644)
	out, err := exec.Command(flowlineBin, "config", "check", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "warning:") || !strings.Contains(string(out), "acknowledges a message when processors.aggregate has absorbed") {
		t.Fatalf("config check: %v\n%s", err, out)
	}
}
