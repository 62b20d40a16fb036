package cluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExamples runs every examples/cluster/*/run.sh (the deployments as
// plain processes on loopback); each checks its totals. The balancer
// deployments are skipped when nginx with the stream module is missing.
func TestExamples(t *testing.T) {
	if flowlineBin == "" {
		t.Skip("needs the binary")
	}
	if _, err := exec.LookPath("jq"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and jq is missing (scripts/deps.sh installs it)")
		}
		t.Skip("the example scripts need jq")
	}
	wd, _ := os.Getwd()
	root := filepath.Join(wd, "..", "..", "examples", "cluster")
	for _, d := range []string{"a-replicator", "b-balancer-sharing", "c-hash-balancer"} {
		t.Run(d, func(t *testing.T) {
			cmd := exec.Command("bash", filepath.Join(root, d, "run.sh"))
			cmd.Env = append(os.Environ(), "FLOWS=60000", "FLOWLINE="+flowlineBin)
			cmd.WaitDelay = 5 * time.Second
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Minute):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("%s did not finish within 3 minutes:\n%s", d, out)
			}
			if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 && strings.Contains(string(out), "nginx") {
				if os.Getenv("CI") == "true" {
					t.Fatalf("CI=true and nginx is missing (scripts/deps.sh installs it): %s", strings.TrimSpace(string(out)))
				}
				t.Skipf("%s", strings.TrimSpace(string(out)))
			}
			if err != nil || !strings.Contains(string(out), "OK: totals exact") {
				t.Fatalf("%s: %v\n%s", d, err, out)
			}
			t.Logf("%s", out)
		})
	}
}

// TestExampleConfigsCheck: `flowline config check` accepts every example
// configuration with its compose defaults (host names that resolve only
// inside compose are resolved when connecting, not when checking).
func TestExampleConfigsCheck(t *testing.T) {
	if flowlineBin == "" {
		t.Skip("needs the binary")
	}
	wd, _ := os.Getwd()
	files, _ := filepath.Glob(filepath.Join(wd, "..", "..", "examples", "cluster", "*", "*.toml"))
	if len(files) < 5 {
		t.Fatalf("found %d example configs", len(files))
	}
	dir := t.TempDir()
	for _, f := range files {
		cmd := exec.Command(flowlineBin, "config", "check", f)
		cmd.Env = append(os.Environ(), "DATA_DIR="+dir, "STORE="+dir, "METRICS=127.0.0.1:0")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}
