// Package deploy checks the deployment files in examples/: the systemd
// unit parses and runs the collector without root.
package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowline/flowline/internal/testbin"
)

func unitPath() string {
	return filepath.Join(testbin.RepoRoot(), "examples", "systemd", "flowline.service")
}

// directives reads a unit file into key -> values (comments skipped).
func directives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not key=value", path, line)
		}
		out[k] = append(out[k], v)
	}
	return out
}

// TestSystemdUnitConfinesTheCollector: the unit runs as its own user with
// no capability (CAP_NET_RAW only where uncommented for a transparent tee),
// a read-only system and the data directory as its one writable path.
func TestSystemdUnitConfinesTheCollector(t *testing.T) {
	d := directives(t, unitPath())
	want := map[string]string{
		"User": "flowline", "Group": "flowline", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"ReadWritePaths": "/var/lib/flowline", "WorkingDirectory": "/var/lib/flowline", "StateDirectory": "flowline",
		"AmbientCapabilities": "", "CapabilityBoundingSet": "",
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// The default config's data_dir is relative: it lands in the writable
	// working directory.
	def, err := os.ReadFile(filepath.Join(testbin.RepoRoot(), "configs", "flowline.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(def), `data_dir = "./data"`) {
		t.Error(`configs/flowline.toml: data_dir is no longer "./data" under WorkingDirectory; update the unit's ReadWritePaths`)
	}
	raw, _ := os.ReadFile(unitPath())
	if !strings.Contains(string(raw), "#AmbientCapabilities=CAP_NET_RAW") {
		t.Error("the unit no longer shows how a transparent tee gets CAP_NET_RAW")
	}
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit, with
// ExecStart pointing at the built binary. Where systemd-analyze is missing
// the test says so and skips.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit file is checked by TestSystemdUnitConfinesTheCollector only")
	}
	bin := testbin.Flowline(t)
	raw, err := os.ReadFile(unitPath())
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(raw), "/usr/local/bin/flowline", bin)
	path := filepath.Join(t.TempDir(), "flowline.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
