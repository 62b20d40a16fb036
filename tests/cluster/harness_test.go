// Package cluster runs the real flowline binary as a replicator and several
// collectors on loopback: flowgen sends flows to the replicator, the
// collectors print pmacct JSON to their own files, and the tests check that
// the sums across the files equal what flowgen sent.
package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// flowlineBin is the binary under test, built once by TestMain.
var flowlineBin string

func TestMain(m *testing.M) {
	short := false
	for _, a := range os.Args {
		if a == "-test.short=true" || a == "-test.short" {
			short = true
		}
	}
	dir, err := os.MkdirTemp("", "flowline-cluster")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if !short {
		flowlineBin = filepath.Join(dir, "flowline")
		wd, _ := os.Getwd()
		cmd := exec.Command("go", "build", "-o", flowlineBin, "./cmd/flowline")
		cmd.Dir = filepath.Join(wd, "..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build flowline: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a running flowline process.
type proc struct {
	t       testing.TB
	name    string
	dir     string
	metrics string // host:port of /metrics
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	done    chan error
}

// start writes config to dir/flowline.toml and runs `flowline run`, waiting
// until the pipeline runs.
func start(t testing.TB, name, dir, metrics, config string, env ...string) *proc {
	t.Helper()
	if flowlineBin == "" {
		t.Skip("cluster tests need the binary; skipped with -short")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "flowline.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, dir: dir, metrics: metrics, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(flowlineBin, "run", "--config", path)
	p.cmd.Dir = dir
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill() // by PID
			<-p.done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.stderr.String(), "pipeline running") {
		select {
		case err := <-p.done:
			t.Fatalf("%s exited at start: %v\n%s", name, err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start within 20s:\n%s", name, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// stop sends SIGTERM to the process (by PID) and requires a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, err, p.stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		p.t.Fatalf("%s did not exit within 60s of SIGTERM:\n%s", p.name, p.stderr.String())
	}
}

// metric sums the samples of a metric (all label sets) from /metrics; it
// returns -1 when the metric is not exposed.
func metric(t testing.TB, addr, name string) float64 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
	body, _ := io.ReadAll(conn)
	sum, found := 0.0, false
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name) && len(line) > len(name) && (line[len(name)] == ' ' || line[len(name)] == '{') {
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				sum += v
				found = true
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}

// waitMetric waits until cond holds for the metric's value, up to d.
func waitMetric(t testing.TB, addr, name string, d time.Duration, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v := metric(t, addr, name)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s at %s = %v: condition not met within %s", name, addr, v, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fileSums are the sums of one print file.
type fileSums struct {
	lines          int
	packets, bytes uint64
	byExporter     map[string]uint64 // packets per peer_ip_src
}

func sums(t testing.TB, path string) fileSums {
	t.Helper()
	s := fileSums{byExporter: map[string]uint64{}}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return s
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row struct {
			Peer    string `json:"peer_ip_src"`
			Packets uint64 `json:"packets"`
			Bytes   uint64 `json:"bytes"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("%s line %d: %v: %s", path, s.lines+1, err, sc.Text())
		}
		s.lines++
		s.packets += row.Packets
		s.bytes += row.Bytes
		s.byExporter[row.Peer] += row.Packets
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}
