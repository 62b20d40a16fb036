// Package plugins runs the real flowline binary with real external plugin
// processes: the three examples under examples/plugins (each built from its
// own module) and a few misbehaving programs. It checks exact totals through
// an external output (also while its process is killed), tags set by an
// external processor, a pcap replay through an external input against the
// same capture sent over UDP, the errors a user sees for a bad plugin, and
// that no plugin process outlives flowline.
package plugins

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/internal/testbin"
)

// Plugin programs built once for the whole test binary.
var bins struct {
	jsonl, netmap, pcap, oldproto string
}

func TestMain(m *testing.M) {
	if testbin.BuildForMain() == "" {
		os.Exit(m.Run()) // -short: every test skips
	}
	dir, err := os.MkdirTemp("", "flowline-plugins")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root := testbin.RepoRoot()
	build := func(moduleDir, pkg, name string) string {
		out := filepath.Join(dir, name)
		// -mod=mod: an example module follows this repository through its
		// replace directive, so a dependency this repository moved on may
		// move the example's requirements too; the build must not fail for it.
		cmd := exec.Command("go", "build", "-mod=mod", "-o", out, pkg)
		cmd.Dir = moduleDir
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, b)
			os.Exit(1)
		}
		return out
	}
	bins.jsonl = build(filepath.Join(root, "examples/plugins/output-jsonl"), ".", "flowline-output-jsonl")
	bins.netmap = build(filepath.Join(root, "examples/plugins/processor-netmap"), ".", "flowline-processor-netmap")
	bins.pcap = build(filepath.Join(root, "examples/plugins/input-pcap"), ".", "flowline-input-pcap")
	bins.oldproto = build(root, "./tests/plugins/testdata/oldproto", "oldproto")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// aggregateConfig is netflow on port -> 5-tuple aggregate -> the middle
// (processors) -> outputs.
func aggregateConfig(dir string, port int, middle, outputs string) string {
	return fmt.Sprintf(`
[agent]
  data_dir = %q
  metrics_address = ""

[[inputs.netflow]]
  address = "127.0.0.1:%d"
  read_buffer = "64MiB"

[[processors.aggregate]]
  primitives = ["src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"]
  history = "1m"
  refresh = "2s"
%s
%s`, filepath.Join(dir, "data"), port, middle, outputs)
}

func printOutput(path string) string {
	return fmt.Sprintf("\n[[outputs.print]]\n  format = \"json\"\n  file = %q\n  timestamps_utc = true\n", path)
}

func jsonlOutput(path string, maxRetries int) string {
	return fmt.Sprintf(`
[[outputs.external]]
  alias = "jsonl"
  command = %q
  max_retries = %d
  [outputs.external.config]
    path = %q
    timestamps_utc = true
`, bins.jsonl, maxRetries, path)
}

func send(t *testing.T, port int, flows, rate uint64, seed int64) flowgen.Totals {
	t.Helper()
	tot, err := flowgen.Run(t.Context(), flowgen.Config{
		Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 9, Flows: flows, Rate: rate, Seed: seed, SourceIDs: 2,
	})
	if err != nil {
		t.Fatalf("flowgen: %v", err)
	}
	return tot
}

func sortedLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	slices.Sort(lines)
	return lines
}

// The external output writes exactly what flowgen sent, line for line what
// outputs.print writes from the same run.
func TestExternalOutputMatchesPrint(t *testing.T) {
	testbin.Flowline(t)
	dir := t.TempDir()
	port := testbin.FreeUDPPort(t)
	printed, external := filepath.Join(dir, "print.jsonl"), filepath.Join(dir, "external.jsonl")
	c := testbin.Start(t, dir, aggregateConfig(dir, port, "", printOutput(printed)+jsonlOutput(external, 10)))
	tot := send(t, port, 1_000_000, 300_000, 21)
	time.Sleep(300 * time.Millisecond)
	c.Stop()
	lines, pkts, bytes := testbin.Sums(t, external)
	if pkts != tot.FlowPackets || bytes != tot.FlowBytes {
		t.Fatalf("external output: %d packets %d bytes in %d lines; flowgen sent %d packets %d bytes\n%s",
			pkts, bytes, lines, tot.FlowPackets, tot.FlowBytes, c.Log())
	}
	a, b := sortedLines(t, printed), sortedLines(t, external)
	if !slices.Equal(a, b) {
		t.Fatalf("outputs.print wrote %d lines, the external output %d, and they differ", len(a), len(b))
	}
	t.Logf("%d flows -> %d lines, identical in print and the external output; %d packets %d bytes exact", tot.Flows, lines, pkts, bytes)
}

// pluginPIDs are flowline's children running command.
func pluginPIDs(flowlinePID int, command string) []int {
	var pids []int
	for _, pid := range testbin.Children(flowlinePID) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.HasPrefix(string(cmdline), command+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// SIGKILL to the plugin process twice mid-run: it is restarted, the batch
// it did not acknowledge is sent again with its id, and the totals stay
// exact, no line written twice.
func TestExternalOutputSurvivesKills(t *testing.T) {
	testbin.Flowline(t)
	dir := t.TempDir()
	port := testbin.FreeUDPPort(t)
	external := filepath.Join(dir, "external.jsonl")
	c := testbin.Start(t, dir, aggregateConfig(dir, port, "", jsonlOutput(external, 1000)))
	done := make(chan flowgen.Totals)
	go func() {
		tot, err := flowgen.Run(t.Context(), flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 9, Flows: 1_000_000, Rate: 150_000, Seed: 22, SourceIDs: 2})
		if err != nil {
			t.Errorf("flowgen: %v", err)
		}
		done <- tot
	}()
	kills := 0
	for _, at := range []time.Duration{2200 * time.Millisecond, 2300 * time.Millisecond} {
		time.Sleep(at)
		pids := pluginPIDs(c.Pid(), bins.jsonl)
		if len(pids) != 1 {
			t.Fatalf("plugin processes: %v", pids)
		}
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		kills++
	}
	tot := <-done
	time.Sleep(300 * time.Millisecond)
	c.Stop()
	lines, pkts, bytes := testbin.Sums(t, external)
	if pkts != tot.FlowPackets || bytes != tot.FlowBytes {
		t.Fatalf("after %d kills: %d packets %d bytes in %d lines; flowgen sent %d packets %d bytes\n%s",
			kills, pkts, bytes, lines, tot.FlowPackets, tot.FlowBytes, c.Log())
	}
	if n := strings.Count(c.Log(), "restarting plugin process"); n < kills {
		t.Fatalf("%d restarts logged after %d kills:\n%s", n, kills, c.Log())
	}
	t.Logf("%d kills of the plugin: %d lines, %d packets %d bytes exact", kills, lines, pkts, bytes)
}

// The netmap processor between aggregate and print tags every record by
// its longest prefix and changes no counter.
func TestExternalProcessorTags(t *testing.T) {
	testbin.Flowline(t)
	dir := t.TempDir()
	port := testbin.FreeUDPPort(t)
	csv := "10.0.0.0/8,1\n10.1.0.0/16,11\n172.16.0.0/12,2\n2001:db8::/32,6\n2001:db8:ff::/48,7\n"
	nets := filepath.Join(dir, "nets.csv")
	if err := os.WriteFile(nets, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	printed := filepath.Join(dir, "print.jsonl")
	middle := fmt.Sprintf("\n[[processors.external]]\n  alias = \"netmap\"\n  command = %q\n  [processors.external.config]\n    networks_file = %q\n", bins.netmap, nets)
	c := testbin.Start(t, dir, aggregateConfig(dir, port, middle, printOutput(printed)))
	tot := send(t, port, 200_000, 200_000, 23)
	time.Sleep(300 * time.Millisecond)
	c.Stop()
	_, pkts, bytes := testbin.Sums(t, printed)
	if pkts != tot.FlowPackets || bytes != tot.FlowBytes {
		t.Fatalf("through the processor: %d packets %d bytes; flowgen sent %d %d\n%s", pkts, bytes, tot.FlowPackets, tot.FlowBytes, c.Log())
	}
	prefixes := []struct {
		p   netip.Prefix
		tag float64
	}{
		{netip.MustParsePrefix("10.1.0.0/16"), 11}, {netip.MustParsePrefix("2001:db8:ff::/48"), 7},
		{netip.MustParsePrefix("10.0.0.0/8"), 1}, {netip.MustParsePrefix("172.16.0.0/12"), 2}, {netip.MustParsePrefix("2001:db8::/32"), 6},
	}
	want := func(addr string) float64 {
		a := netip.MustParseAddr(addr)
		for _, p := range prefixes { // longest first
			if p.p.Contains(a) {
				return p.tag
			}
		}
		return 0
	}
	rows := testbin.ReadJSONLines(t, printed)
	for i, row := range rows {
		for _, k := range [][2]string{{"ip_src", "tag"}, {"ip_dst", "tag2"}} {
			w := want(row[k[0]].(string))
			got, _ := row[k[1]].(interface{ Float64() (float64, error) })
			var g float64
			if got != nil {
				g, _ = got.Float64()
			}
			if g != w {
				t.Fatalf("line %d: %s %v: %s = %v, want %v", i+1, k[0], row[k[0]], k[1], row[k[1]], w)
			}
		}
	}
	t.Logf("%d records tagged by their longest prefix; totals exact", len(rows))
}

// unaggregatedConfig prints every decoded flow; input is the input table.
func unaggregatedConfig(dir, input, out string) string {
	return fmt.Sprintf(`
[agent]
  data_dir = %q
  metrics_address = ""
%s
[[outputs.print]]
  format = "json"
  file = %q
  timestamps_utc = true
`, filepath.Join(dir, "data"), input, out)
}

// readPcapPayloads returns the UDP payloads of a corpus pcap (Ethernet,
// IPv4, UDP, as the corpus README says).
func readPcapPayloads(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for off := 24; off+16 <= len(data); {
		n := int(uint32(data[off+8]) | uint32(data[off+9])<<8 | uint32(data[off+10])<<16 | uint32(data[off+11])<<24)
		frame := data[off+16 : off+16+n]
		off += 16 + n
		if len(frame) < 42 || frame[12] != 8 || frame[13] != 0 || frame[23] != 17 {
			continue
		}
		ihl := int(frame[14]&0xf) * 4
		out = append(out, frame[14+ihl+8:])
	}
	return out
}

// withoutArrival drops timestamp_arrival (the replay's clock, not the
// capture's) from printed lines and sorts them.
func withoutArrival(t *testing.T, path string) []string {
	lines := sortedLines(t, path)
	for i, l := range lines {
		if j := strings.Index(l, `, "timestamp_arrival": "`); j >= 0 {
			k := strings.Index(l[j+len(`, "timestamp_arrival": "`):], `"`)
			lines[i] = l[:j] + l[j+len(`, "timestamp_arrival": "`)+k+1:]
		}
	}
	slices.Sort(lines)
	return lines
}

// inputs.external with the pcap example gives the same records as sending
// the capture's datagrams over UDP to inputs.netflow.
func TestExternalInputPcapMatchesUDP(t *testing.T) {
	testbin.Flowline(t)
	seqs := filepath.Join(testbin.RepoRoot(), "..", "shared", "corpus", "logstash-codec-netflow", "sequences")
	for _, name := range []string{"netflow_9_cisco_asa.pcap", "ipfix_barracuda_firewall.pcap", "netflow_9_h3c.pcap", "ipfix_openbsd_pflow.pcap"} {
		t.Run(name, func(t *testing.T) {
			capture := filepath.Join(seqs, name)
			payloads := readPcapPayloads(t, capture)
			if len(payloads) == 0 {
				t.Fatalf("%s: no datagrams", capture)
			}
			dir := t.TempDir()

			// Over UDP.
			port := testbin.FreeUDPPort(t)
			udpOut := filepath.Join(dir, "udp.jsonl")
			c := testbin.Start(t, filepath.Join(dir, "udp"), unaggregatedConfig(filepath.Join(dir, "udp"),
				fmt.Sprintf("[[inputs.netflow]]\n  address = \"127.0.0.1:%d\"\n", port), udpOut))
			conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range payloads {
				if _, err := conn.Write(p); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Millisecond) // templates first, in order
			}
			conn.Close()
			time.Sleep(300 * time.Millisecond)
			c.Stop()

			// Through the external input; flowline ends by itself.
			pcapOut := filepath.Join(dir, "pcap.jsonl")
			p := testbin.Start(t, filepath.Join(dir, "pcap"), unaggregatedConfig(filepath.Join(dir, "pcap"),
				fmt.Sprintf("[[inputs.external]]\n  alias = \"pcap\"\n  command = %q\n  [inputs.external.config]\n    file = %q\n", bins.pcap, capture), pcapOut))
			if err := p.Wait(60 * time.Second); err != nil {
				t.Fatalf("flowline with a finite input did not end cleanly: %v\n%s", err, p.Log())
			}
			if !strings.Contains(p.Log(), "every input finished") {
				t.Errorf("no word of the input's end in the log:\n%s", p.Log())
			}
			// The plugin's own log line, tagged with the table's alias.
			logged := false
			for _, line := range strings.Split(p.Log(), "\n") {
				logged = logged || strings.Contains(line, `msg="capture replayed"`) && strings.Contains(line, "input=pcap") && strings.Contains(line, "datagrams=")
			}
			if !logged {
				t.Errorf("the plugin's log line is not in flowline's log with its alias:\n%s", p.Log())
			}
			a, b := withoutArrival(t, udpOut), withoutArrival(t, pcapOut)
			if len(a) == 0 || !slices.Equal(a, b) {
				t.Fatalf("UDP gave %d records, the pcap input %d; they differ\nudp:  %.300q\npcap: %.300q\n%s", len(a), len(b), a, b, p.Log())
			}
			t.Logf("%d datagrams -> %d identical records", len(payloads), len(a))
		})
	}
}

// runCLI runs the binary to its end and returns its exit code and stderr.
func runCLI(t *testing.T, dir string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(testbin.Flowline(t), args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stderr.String()
}

// Each kind of broken plugin gives one clear error line and a non-zero exit
// of both `flowline config check` and `flowline run`.
func TestPluginErrors(t *testing.T) {
	testbin.Flowline(t)
	dir := t.TempDir()
	exits := filepath.Join(dir, "exits-at-start.sh")
	os.WriteFile(exits, []byte("#!/bin/sh\necho 'cannot read /etc/licence.key: no such file' >&2\nexit 3\n"), 0o755)
	notPlugin := filepath.Join(dir, "not-a-plugin.sh")
	os.WriteFile(notPlugin, []byte("#!/bin/sh\necho 'hello, I am a shell script'\nsleep 1\n"), 0o755)
	output := func(command, config string) string {
		return fmt.Sprintf("[agent]\n  data_dir = %q\n  metrics_address = \"\"\n\n[[inputs.netflow]]\n  address = \"127.0.0.1:0\"\n\n[[outputs.external]]\n  command = %q\n  start_timeout = \"10s\"\n  [outputs.external.config]\n%s", filepath.Join(dir, "data"), command, config)
	}
	cases := []struct {
		name, config string
		want         []string
	}{
		{"older protocol", output(bins.oldproto, ""), []string{bins.oldproto, "Plugin version: 0", "protocol 1"}},
		{"not a plugin", output(notPlugin, ""), []string{notPlugin, "not a Flowline plugin"}},
		{"exits at start", output(exits, ""), []string{exits, "exited at start", "cannot read /etc/licence.key"}},
		{"wrong key", output(bins.jsonl, "    path = \"x.jsonl\"\n    paht = \"y\"\n"), []string{"flowline.toml:13: outputs.external.config.paht", `unknown key "paht"`}},
		{"wrong kind", strings.Replace(output(bins.netmap, ""), "[outputs.external.config]", "", 1), []string{bins.netmap, "kind processors", "not outputs"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "flowline.toml")
			if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"config", "check", path}, {"run", "--config", path}} {
				code, stderr := runCLI(t, dir, args...)
				if code == 0 {
					t.Fatalf("flowline %s: exit 0\n%s", args[0], stderr)
				}
				var errLine string
				sc := bufio.NewScanner(strings.NewReader(stderr))
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "flowline: ") {
						errLine = sc.Text()
					}
				}
				for _, w := range tc.want {
					if !strings.Contains(errLine, w) {
						t.Fatalf("flowline %s: the error line lacks %q:\n%s", args[0], w, stderr)
					}
				}
				t.Logf("flowline %s: %s", args[0], errLine)
			}
		})
	}
}

// kill -9 of flowline takes every plugin process with it.
func TestNoPluginOutlivesFlowline(t *testing.T) {
	testbin.Flowline(t)
	dir := t.TempDir()
	nets := filepath.Join(dir, "nets.csv")
	os.WriteFile(nets, []byte("10.0.0.0/8,1\n"), 0o644)
	port := testbin.FreeUDPPort(t)
	middle := fmt.Sprintf("\n[[processors.external]]\n  command = %q\n  [processors.external.config]\n    networks_file = %q\n", bins.netmap, nets)
	c := testbin.Start(t, dir, aggregateConfig(dir, port, middle, jsonlOutput(filepath.Join(dir, "out.jsonl"), 10)))
	kids := append(pluginPIDs(c.Pid(), bins.netmap), pluginPIDs(c.Pid(), bins.jsonl)...)
	if len(kids) != 2 {
		t.Fatalf("plugin processes before the kill: %v", kids)
	}
	c.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range kids {
		for testbin.Alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("plugin process %d still runs after flowline was killed", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
