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
	"slices"
	"sort"
	"strconv"
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
type compareCfg struct {
	name       string
	primitives []string
	format     string // json or csv
	// unaggregated runs flowline without processors.aggregate (one line per
	// flow) against nfacctd aggregating by every field the flows carry.
	unaggregated bool
}

var cases = []compareCfg{
	{name: "hosts_ports_flags_proto", primitives: []string{"src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"}, format: "json"},
	{name: "peer_as_iface_tos_mask", primitives: []string{"peer_src_ip", "src_as", "dst_as", "in_iface", "out_iface", "tos", "src_mask", "dst_mask"}, format: "json"},
	{name: "csv_all_key_primitives", primitives: []string{"src_mac", "dst_mac", "vlan", "src_as", "dst_as", "peer_src_ip", "in_iface", "out_iface", "src_host", "src_net", "dst_host", "dst_net", "src_mask", "dst_mask", "src_port", "dst_port", "tcpflags", "proto", "tos", "flows"}, format: "csv"},
	{name: "unaggregated", primitives: []string{"src_mac", "dst_mac", "vlan", "src_as", "dst_as", "peer_src_ip", "peer_dst_ip", "in_iface", "out_iface", "src_host", "dst_host", "src_mask", "dst_mask", "src_port", "dst_port", "tcpflags", "proto", "tos", "timestamp_start", "timestamp_end"}, format: "json", unaggregated: true},
}

func TestAgainstNfacctd(t *testing.T) {
	nfacctd := nfacctdPath(t)
	flowline := buildFlowline(t, t.TempDir())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			compareCase(t, nfacctd, flowline, c)
		})
	}
}

func compareCase(t *testing.T, nfacctd, flowline string, c compareCfg) {
	dir := t.TempDir()
	primitives := c.primitives

	// nfacctd.
	nfDir := filepath.Join(dir, "nfacctd")
	if err := os.MkdirAll(nfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	nfPort := freeUDPPort(t)
	nfOut := filepath.Join(nfDir, "nfacctd."+c.format)
	var extra []string
	if c.unaggregated {
		// No history (unaggregated lines have no stamps); the IP next hop
		// is peer_dst_ip.
		extra = append(extra, "use_ip_next_hop: true", "print_history[p]: 0")
	}
	conf := nfacctdConfig(t, nfDir, nfPort, strings.Join(primitives, ","), c.format, nfOut, extra...)
	nf := startProc(t, "nfacctd", []string{nfacctd, "-f", conf}, nfDir)
	waitLog(t, nf, filepath.Join(nfDir, "nfacctd.log"), 15*time.Second, "waiting for NetFlow", "cache entries=")

	// flowline.
	flDir := filepath.Join(dir, "flowline")
	if err := os.MkdirAll(flDir, 0o755); err != nil {
		t.Fatal(err)
	}
	flPort := freeUDPPort(t)
	flOut := filepath.Join(flDir, "flowline."+c.format)
	quoted := make([]string, len(primitives))
	for i, p := range primitives {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	flConf := filepath.Join(flDir, "flowline.toml")
	agg := fmt.Sprintf(`[[processors.aggregate]]
  primitives = [%s]
  history = "1m"
  refresh = "5s"
  time = "arrival"
`, strings.Join(quoted, ", "))
	if c.unaggregated {
		agg = ""
	}
	toml := fmt.Sprintf(`[agent]
  data_dir = %q
  metrics_address = ""
[[inputs.netflow]]
  address = "127.0.0.1:%d"
%s[[outputs.print]]
  format = %q
  file = %q
  timestamps_utc = true
`, flDir, flPort, agg, c.format, flOut)
	if err := os.WriteFile(flConf, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	fl := startProc(t, "flowline", []string{flowline, "run", "--config", flConf}, flDir)
	waitUDPListening(t, fl, flPort, 15*time.Second)

	// Keep every datagram inside one minute bin: start at least 15 s before
	// the next minute.
	// Nor in the first two seconds of a minute: nfacctd's plugin stamps
	// data with the time of its last wake-up, which can still be the
	// previous minute (a run binned nfacctd's lines a minute before
	// Flowline's).
	if s := time.Now().Second(); s > 45 {
		time.Sleep(time.Duration(62-s) * time.Second)
	} else if s < 2 {
		time.Sleep(time.Duration(2-s) * time.Second)
	}
	pkts := encodeV9(testFlows(), uint32(time.Now().Unix()), 100000, 7, 3)
	sendAll(t, nfPort, pkts)
	sendAll(t, flPort, pkts)
	// nfacctd purges every 2 s; on a loaded machine its core hands the
	// data to the print plugin later now and then (a run printed nothing
	// after 3 s): then wait for its first lines, up to 15 s, and one
	// purge more for the rest.
	time.Sleep(3 * time.Second)
	if st, err := os.Stat(nfOut); err != nil || st.Size() == 0 {
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if st, err := os.Stat(nfOut); err == nil && st.Size() > 0 {
				break
			}
		}
		time.Sleep(2500 * time.Millisecond)
	}

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
	var drop []string
	if c.unaggregated {
		// The arrival time differs between two collectors by nature.
		drop = []string{"timestamp_arrival", "TIMESTAMP_ARRIVAL"}
	}
	want, wantOrder := sumLines(t, "nfacctd", parseLines(t, "nfacctd", c.format, nfLines), drop)
	got, gotOrder := sumLines(t, "flowline", parseLines(t, "flowline", c.format, flLines), drop)
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

// pair is one printed field: its key and its raw value (JSON text, or the CSV
// cell).
type pair struct{ key, raw string }

// parseLines turns JSON lines, or CSV rows under their title line, into
// ordered key/value pairs. For CSV the title becomes a pseudo line of its
// own, so that title differences show as a key order difference.
func parseLines(t *testing.T, who, format string, lines []string) [][]pair {
	t.Helper()
	var out [][]pair
	if format == "csv" {
		title := strings.Split(lines[0], ",")
		for _, l := range lines[1:] {
			if l == lines[0] {
				continue // a repeated title (there should be none)
			}
			cells := strings.Split(l, ",")
			if len(cells) != len(title) {
				t.Fatalf("%s: %d cells under a %d-column title: %s", who, len(cells), len(title), l)
			}
			ps := make([]pair, len(cells))
			for i := range cells {
				ps[i] = pair{strings.ToLower(title[i]), cells[i]}
			}
			out = append(out, ps)
		}
		return out
	}
	for _, l := range lines {
		dec := json.NewDecoder(strings.NewReader(l))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("%s: not a JSON object: %s", who, l)
		}
		var ps []pair
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("%s: %v in %s", who, err, l)
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatalf("%s: %v in %s", who, err, l)
			}
			ps = append(ps, pair{tok.(string), string(raw)})
		}
		out = append(out, ps)
	}
	return out
}

// sumLines sums packets, bytes and flows per key: the line without
// stamp_updated, the counters and the drop keys, with the raw value forms
// kept (so "tcp_flags": "26" and "port_src": 0 must match byte for byte). It
// also returns the key order of the lines (the same on every line).
func sumLines(t *testing.T, who string, lines [][]pair, drop []string) (map[string]counters, string) {
	t.Helper()
	sums := map[string]counters{}
	order := ""
	for _, l := range lines {
		var keys, parts []string
		var c counters
		for _, p := range l {
			if slices.Contains(drop, p.key) {
				continue
			}
			keys = append(keys, p.key)
			switch p.key {
			case "stamp_updated":
				continue
			case "packets", "bytes", "flows":
				v, err := strconv.ParseUint(p.raw, 10, 64)
				if err != nil {
					t.Fatalf("%s: %s is not a number: %v", who, p.key, l)
				}
				switch p.key {
				case "packets":
					c.packets += v
				case "bytes":
					c.bytes += v
				default:
					c.flows += v
				}
				continue
			}
			parts = append(parts, fmt.Sprintf("%q: %s", p.key, p.raw))
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
