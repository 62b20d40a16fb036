package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowline/flowline/configs"
	"github.com/flowline/flowline/core/config"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestSampleConfigChecks: `flowline config` prints a config that
// `flowline config check` accepts, with every plugin in it.
func TestSampleConfigChecks(t *testing.T) {
	code, sample, stderr := runCLI("config")
	if code != 0 {
		t.Fatalf("flowline config: exit %d: %s", code, stderr)
	}
	for _, table := range []string{"[agent]", "[[inputs.netflow]]", "[[processors.templates]]", "[[processors.sampling]]", "[[processors.aggregate]]", "[[outputs.print]]"} {
		if !strings.Contains(sample, table) {
			t.Errorf("sample config lacks %s", table)
		}
	}
	path := filepath.Join(t.TempDir(), "sample.toml")
	if err := os.WriteFile(path, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCLI("config", "check", path); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("config check of the sample: exit %d: %s%s", code, out, stderr)
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	cfg, err := config.Parse(configs.DefaultName, configs.Default)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Inputs) != 1 || cfg.Inputs[0].Name != "netflow" {
		t.Fatalf("default config inputs = %+v", cfg.Inputs)
	}
}

func TestBadConfigNamesFileLineAndKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(path, []byte("[agent]\n  data_dir = \"x\"\n\n[[inputs.netflow]]\n  adress = \"0.0.0.0:9995\"\n\n[[outputs.print]]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI("config", "check", path)
	if code != 1 || !strings.Contains(stderr, path+":5:") || !strings.Contains(stderr, `"adress"`) {
		t.Fatalf("exit %d, stderr %q: want exit 1 naming %s:5 and the key", code, stderr, path)
	}
	code, _, stderr = runCLI("run", "--config", path)
	if code != 1 || !strings.Contains(stderr, path+":5:") {
		t.Fatalf("run with a bad config: exit %d, stderr %q", code, stderr)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, stderr := runCLI("frobnicate"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
