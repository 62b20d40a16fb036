package store

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrimitivesMustMatch: outputs.duckdb learns the aggregate's
// primitives; repeating them is optional, and a list that differs stops the
// start with one line naming both lists.
func TestPrimitivesMustMatch(t *testing.T) {
	needBinary(t)
	for name, tc := range map[string]struct {
		primitives, want string
	}{
		"same set, other order": {`["proto", "tcpflags", "dst_port", "src_port", "dst_host", "src_host"]`, ""},
		"different": {`["src_host", "dst_host"]`,
			"outputs.duckdb: primitives = [src_host, dst_host] differ from the aggregate's [src_host, dst_host, src_port, dst_port, tcpflags, proto]"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "flowline.toml")
			writeFile(t, cfg, storeConfig(freeUDPPort(t), freeTCPPort(t), "1s", "  primitives = "+tc.primitives))
			if tc.want == "" {
				start(t, dir, nil, "--config", cfg).Stop()
				return
			}
			cmd := exec.Command(flowlineBin, "run", "--config", cfg)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if strings.HasPrefix(l, "flowline: ") || strings.Contains(l, "level=ERROR") {
					lines = append(lines, l)
				}
			}
			if err == nil || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("want the start to fail with one line saying %q; err %v, output:\n%s", tc.want, err, out)
			}
		})
	}
}
