// Package e2e runs the real flowline binary: flowgen sends flows over
// loopback, flowline aggregates and writes them, and the tests check every
// total after a SIGTERM shutdown.
package e2e

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
	flagShort := false
	for _, a := range os.Args {
		if a == "-test.short=true" || a == "-test.short" {
			flagShort = true
		}
	}
	dir, err := os.MkdirTemp("", "flowline-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 0
	if !flagShort {
		flowlineBin = filepath.Join(dir, "flowline")
		cmd := exec.Command("go", "build", "-o", flowlineBin, "./cmd/flowline")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build flowline: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code = m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..")
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// freeTCPPort returns a loopback TCP port that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// collector is a running flowline process.
type collector struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
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

// startCollector writes config to dir and starts `flowline run --config`,
// waiting until it logs that the pipeline runs.
func startCollector(t *testing.T, dir, config string) *collector {
	t.Helper()
	if flowlineBin == "" {
		t.Skip("end-to-end tests need the binary; skipped with -short")
	}
	path := filepath.Join(dir, "flowline.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &collector{t: t, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	c.cmd = exec.Command(flowlineBin, "run", "--config", path)
	c.cmd.Dir = dir
	c.cmd.Stderr = c.stderr
	c.cmd.Stdout = io.Discard
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.stderr.String(), "pipeline running") {
		select {
		case err := <-c.done:
			t.Fatalf("flowline exited at start: %v\n%s", err, c.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("flowline did not start within 20s:\n%s", c.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// stop sends SIGTERM and requires a clean exit with code 0.
func (c *collector) stop() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	select {
	case err := <-c.done:
		if err != nil {
			c.t.Fatalf("flowline exited with %v after SIGTERM:\n%s", err, c.stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = c.cmd.Process.Kill()
		c.t.Fatalf("flowline did not exit within 60s of SIGTERM:\n%s", c.stderr.String())
	}
}

// metric scrapes one sample value (name with labels exactly as exposed) from /metrics.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
	body, _ := io.ReadAll(conn)
	var sum float64
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name) && (len(line) > len(name) && (line[len(name)] == ' ' || line[len(name)] == '{')) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				sum += v
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("metric %s not exposed", name)
	}
	return sum
}

// sums reads a pmacct JSON lines file and returns the line count and the
// sums of packets and bytes.
func sums(t *testing.T, path string) (lines int, packets, bytes uint64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row struct {
			Packets uint64 `json:"packets"`
			Bytes   uint64 `json:"bytes"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("%s line %d: %v: %s", path, lines+1, err, sc.Text())
		}
		lines++
		packets += row.Packets
		bytes += row.Bytes
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return
}
