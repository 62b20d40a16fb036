// Package cases replays the test cases under testdata/ through the real
// binary: each folder holds a config, raw datagrams and the expected print
// output (see README.md). Run with -update to rewrite the expectations.
package cases

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/testbin"
)

var update = flag.Bool("update", false, "rewrite testdata/*/expected.jsonl from the current output")

// volatile keys carry the clock of the run, not the decoded data.
var volatile = []string{"stamp_updated", "timestamp_arrival"}

func TestCases(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "*", "config.toml"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no test cases found: %v", err)
	}
	for _, cfgPath := range dirs {
		dir := filepath.Dir(cfgPath)
		t.Run(filepath.Base(dir), func(t *testing.T) { runCase(t, dir) })
	}
}

func runCase(t *testing.T, dir string) {
	cfg, err := os.ReadFile(filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	packets, _ := filepath.Glob(filepath.Join(dir, "*.bin"))
	sort.Strings(packets)
	if len(packets) == 0 {
		t.Fatal("no *.bin datagrams in the case")
	}
	work := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testbin.FreeUDPPort(t))
	out := filepath.Join(work, "out.jsonl")
	config := strings.NewReplacer("{{ADDRESS}}", addr, "{{OUTPUT}}", out, "{{DATA_DIR}}", filepath.Join(work, "data")).Replace(string(cfg))
	p := testbin.Start(t, work, config)

	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, f := range packets {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(data); err != nil {
			t.Fatalf("send %s: %v", f, err)
		}
		// Keep the order across batches: the next datagram goes after this
		// one has been read.
		time.Sleep(150 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	p.Stop()

	got := normalize(t, out)
	expPath := filepath.Join(dir, "expected.jsonl")
	if *update {
		if err := os.WriteFile(expPath, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := normalizeLines(t, expPath)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("output differs from %s (run with -update to see the diff in git)\n got (%d lines):\n%s\nwant (%d lines):\n%s\n\nlog:\n%s",
			expPath, len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"), p.Log())
	}
}

// normalize reads the output, drops the volatile keys, re-encodes each line
// with sorted keys and sorts the lines.
func normalize(t *testing.T, path string) []string {
	t.Helper()
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
	}
	return normalizeLines(t, path)
}

func normalizeLines(t *testing.T, path string) []string {
	t.Helper()
	var lines []string
	for _, row := range testbin.ReadJSONLines(t, path) {
		for _, k := range volatile {
			delete(row, k)
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(row); err != nil { // map keys are sorted
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(b.String()))
	}
	sort.Strings(lines)
	return lines
}
