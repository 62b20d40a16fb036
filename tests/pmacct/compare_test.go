// Package pmacct checks that Flowline is a drop-in for pmacct's nfacctd: the
// same NetFlow v9 datagrams go to nfacctd and to flowline, and the print
// plugins' JSON lines must agree.
package pmacct

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nfacctdPath finds nfacctd: under CI it must be installed, elsewhere the
// test skips without it.
func nfacctdPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nfacctd", "/usr/sbin/nfacctd", "/usr/local/sbin/nfacctd"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nfacctd is not installed (apt-get install pmacct); CI must run the pmacct comparison")
	}
	t.Skip("nfacctd is not installed (apt-get install pmacct)")
	return ""
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildFlowline builds ./cmd/flowline into dir.
func buildFlowline(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "flowline")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/flowline")
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/flowline: %v\n%s", err, b)
	}
	return out
}

// waitLog waits until the file contains every one of the strings.
func waitLog(t *testing.T, p *proc, path string, d time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		ok := true
		for _, w := range want {
			ok = ok && bytes.Contains(b, []byte(w))
		}
		if ok {
			return
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited early: %v\n%s\n%s", p.name, err, b, p.out.String())
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s not ready within %v (want %q in its log)\n%s", p.name, d, want, b)
}

// primitives maps pmacct aggregate names to Flowline's (the same names).
var cases = []struct {
	name       string
	primitives []string
}{
	{"hosts_ports_flags_proto", []string{"src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"}},
	{"peer_as_iface_tos_mask", []string{"peer_src_ip", "src_as", "dst_as", "in_iface", "out_iface", "tos", "src_mask", "dst_mask"}},
}

func TestAgainstNfacctd(t *testing.T) {
	nfacctd := nfacctdPath(t)
	flowline := buildFlowline(t, t.TempDir())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			compareCase(t, nfacctd, flowline, c.primitives)
		})
	}
}

func compareCase(t *testing.T, nfacctd, flowline string, primitives []string) {
	dir := t.TempDir()

	// nfacctd.
	nfDir := filepath.Join(dir, "nfacctd")
	if err := os.MkdirAll(nfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	nfPort := freeUDPPort(t)
	nfOut := filepath.Join(nfDir, "nfacctd.jsonl")
	conf := nfacctdConfig(t, nfDir, nfPort, strings.Join(primitives, ","), "json", nfOut)
	nf := startProc(t, "nfacctd", []string{nfacctd, "-f", conf}, nfDir)
	waitLog(t, nf, filepath.Join(nfDir, "nfacctd.log"), 15*time.Second, "waiting for NetFlow", "JSON: setting object handlers")

	// flowline.
	flDir := filepath.Join(dir, "flowline")
	if err := os.MkdirAll(flDir, 0o755); err != nil {
		t.Fatal(err)
	}
	flPort := freeUDPPort(t)
	flOut := filepath.Join(flDir, "flowline.jsonl")
	quoted := make([]string, len(primitives))
	for i, p := range primitives {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	flConf := filepath.Join(flDir, "flowline.toml")
	toml := fmt.Sprintf(`[agent]
  data_dir = %q
  metrics_address = ""
[[inputs.netflow]]
  address = "127.0.0.1:%d"
[[processors.aggregate]]
  primitives = [%s]
  history = "1m"
  refresh = "5s"
  time = "arrival"
[[outputs.print]]
  format = "json"
  file = %q
  timestamps_utc = true
`, flDir, flPort, strings.Join(quoted, ", "), flOut)
	if err := os.WriteFile(flConf, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	fl := startProc(t, "flowline", []string{flowline, "run", "--config", flConf}, flDir)
	waitUDPListening(t, fl, flPort, 15*time.Second)

	// Keep every datagram inside one minute bin: start at least 15 s before
	// the next minute.
	if s := time.Now().Second(); s > 45 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	pkts := encodeV9(testFlows(), uint32(time.Now().Unix()), 100000, 7, 3)
	sendAll(t, nfPort, pkts)
	sendAll(t, flPort, pkts)
	time.Sleep(3 * time.Second) // nfacctd purges every 2 s

	nf.stop(t, syscall.SIGINT, 15*time.Second)
	fl.stop(t, syscall.SIGTERM, 15*time.Second)

	nfLines, flLines := readLines(t, nfOut), readLines(t, flOut)
	if len(nfLines) == 0 {
		b, _ := os.ReadFile(filepath.Join(nfDir, "nfacctd.log"))
		t.Fatalf("nfacctd printed nothing\n%s\n%s", b, nf.out.String())
	}
	if len(flLines) == 0 {
		t.Fatalf("flowline printed nothing\n%s", fl.out.String())
	}
	want, wantOrder := sumLines(t, "nfacctd", nfLines)
	got, gotOrder := sumLines(t, "flowline", flLines)
	t.Logf("nfacctd: %d lines, %d keys; flowline: %d lines, %d keys; key order %s", len(nfLines), len(want), len(flLines), len(got), wantOrder)
	if len(want) < 5 {
		t.Errorf("only %d aggregates from nfacctd: the flow set should give more", len(want))
	}
	if wantOrder != gotOrder {
		t.Errorf("key order differs:\nnfacctd  %s\nflowline %s", wantOrder, gotOrder)
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("flowline lacks %s (nfacctd: %v)", k, w)
		case g != w:
			t.Errorf("%s: flowline %v, nfacctd %v", k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("flowline has %s (%v), nfacctd does not", k, g)
		}
	}
	if t.Failed() {
		t.Logf("nfacctd:\n%s\nflowline:\n%s\nflowline log:\n%s", strings.Join(nfLines, "\n"), strings.Join(flLines, "\n"), fl.out.String())
	}
}

type counters struct{ packets, bytes, flows uint64 }

// sumLines sums packets, bytes and flows per key: the line without
// stamp_updated and the counters, with the raw JSON value forms kept (so
// "tcp_flags": "26" and "port_src": 0 must match byte for byte). It also
// returns the key order of the lines (which must be the same on every line).
func sumLines(t *testing.T, who string, lines []string) (map[string]counters, string) {
	t.Helper()
	sums := map[string]counters{}
	order := ""
	for _, l := range lines {
		dec := json.NewDecoder(strings.NewReader(l))
		dec.UseNumber()
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("%s: not a JSON object: %s", who, l)
		}
		var keys, parts []string
		var c counters
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("%s: %v in %s", who, err, l)
			}
			k := tok.(string)
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatalf("%s: %v in %s", who, err, l)
			}
			keys = append(keys, k)
			var n json.Number
			switch k {
			case "stamp_updated":
				continue
			case "packets", "bytes", "flows":
				if err := json.Unmarshal(raw, &n); err != nil {
					t.Fatalf("%s: %s is not a number in %s", who, k, l)
				}
				v, _ := n.Int64()
				switch k {
				case "packets":
					c.packets += uint64(v)
				case "bytes":
					c.bytes += uint64(v)
				default:
					c.flows += uint64(v)
				}
				continue
			}
			parts = append(parts, fmt.Sprintf("%q: %s", k, raw))
		}
		o := strings.Join(keys, ",")
		if order == "" {
			order = o
		} else if o != order {
			t.Errorf("%s: key order changes between lines: %s vs %s", who, order, o)
		}
		sort.Strings(parts)
		k := "{" + strings.Join(parts, ", ") + "}"
		s := sums[k]
		s.packets += c.packets
		s.bytes += c.bytes
		s.flows += c.flows
		sums[k] = s
	}
	return sums, order
}
