// Package testbin runs the real flowline binary for end-to-end tests: it
// builds it once per test process, starts it with a configuration, waits
// until the pipeline runs, and stops it with SIGTERM, requiring a clean exit.
package testbin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// RepoRoot is the repository's root directory (found from this file).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Build builds cmd/flowline once per test process and returns its path.
func Build() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowline-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "flowline")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/flowline")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build flowline: %v\n%s", err, out)
		}
	})
	return binPath, buildErr
}

// BuildForMain is for a TestMain: it returns the binary's path, or "" under
// -short (end-to-end tests then skip); a failed build ends the process.
func BuildForMain() string {
	flag.Parse()
	if testing.Short() {
		return ""
	}
	bin, err := Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return bin
}

// Flowline returns the built binary. Under -short it skips the test:
// end-to-end runs are not the quick loop.
func Flowline(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	bin, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Process is a running flowline.
type Process struct {
	t           testing.TB
	name        string
	stopTimeout time.Duration
	cmd         *exec.Cmd
	stderr      *LockedBuffer
	done        chan error
}

// LockedBuffer is a bytes.Buffer that a process writes to while the test reads it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Options say how to run the binary.
type Options struct {
	// Dir is the working directory.
	Dir string
	// Args follow the binary's name, e.g. run --config FILE.
	Args []string
	// Env is added to the test's environment.
	Env []string
	// Name is what messages call the process (default "flowline").
	Name string
	// StartTimeout bounds the wait for "pipeline running" (default 60 s);
	// StopTimeout the wait for the exit after SIGTERM (default 90 s).
	StartTimeout, StopTimeout time.Duration
}

// Launch runs the binary with o and waits until its pipeline runs. When the
// process exits before that, Launch returns an error holding its log (a test
// of a bad configuration expects that). The process is killed at the end of
// the test if it still runs.
func Launch(t testing.TB, o Options) (*Process, error) {
	t.Helper()
	bin := Flowline(t)
	if o.Name == "" {
		o.Name = "flowline"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 90 * time.Second
	}
	p := &Process{t: t, name: o.Name, stopTimeout: o.StopTimeout, stderr: &LockedBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, o.Args...)
	p.cmd.Dir = o.Dir
	p.cmd.Env = append(os.Environ(), o.Env...)
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
	deadline := time.Now().Add(o.StartTimeout)
	for !strings.Contains(p.stderr.String(), "pipeline running") {
		select {
		case err := <-p.done:
			p.done <- err
			return nil, fmt.Errorf("%s exited at start (%v):\n%s", p.name, err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start within %s:\n%s", p.name, o.StartTimeout, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p, nil
}

// Start writes config to dir/flowline.toml and runs `flowline run --config`
// in dir (with env added), waiting for the pipeline to run; a failed start
// fails the test.
func Start(t testing.TB, dir, config string, env ...string) *Process {
	t.Helper()
	path := filepath.Join(dir, "flowline.toml")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Launch(t, Options{Dir: dir, Args: []string{"run", "--config", path}, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Log is what the process wrote to stderr so far.
func (p *Process) Log() string { return p.stderr.String() }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM and requires exit code 0 within the stop timeout. A
// process that already exited is left alone.
func (p *Process) Stop() {
	p.t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, err, p.stderr.String())
		}
	case <-time.After(p.stopTimeout):
		_ = p.cmd.Process.Kill()
		p.t.Fatalf("%s did not exit within %s of SIGTERM:\n%s", p.name, p.stopTimeout, p.stderr.String())
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill() {
	p.t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.done
}

// FreeUDPPort returns a loopback UDP port that was free a moment ago.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// FreeTCPPort returns a loopback TCP port that was free a moment ago.
func FreeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ReadJSONLines parses a file of JSON objects, one per line.
func ReadJSONLines(t testing.TB, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row map[string]any
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		if err := d.Decode(&row); err != nil {
			t.Fatalf("%s line %d: %v: %s", path, len(rows)+1, err, sc.Text())
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// Sums reads a pmacct JSON lines file and returns the line count and the
// sums of packets and bytes.
func Sums(t testing.TB, path string) (lines int, packets, bytes uint64) {
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

// Metric scrapes /metrics at addr and returns the sum of the samples of name
// (over all label sets). It fails the test when name is not exposed.
func Metric(t testing.TB, addr, name string) float64 {
	t.Helper()
	v, ok := TryMetric(t, addr, name)
	if !ok {
		t.Fatalf("metric %s not exposed at %s", name, addr)
	}
	return v
}

// TryMetric is Metric that reports whether name is exposed instead of
// failing. name may carry labels exactly as exposed (name{a="b"}).
func TryMetric(t testing.TB, addr, name string) (float64, bool) {
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
		if !strings.HasPrefix(line, name) || len(line) == len(name) || (line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		f := strings.Fields(line)
		var v float64
		if _, err := fmt.Sscan(f[len(f)-1], &v); err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// Wait waits up to timeout for the process to exit by itself and returns
// its exit error (nil for exit code 0).
func (p *Process) Wait(timeout time.Duration) error {
	p.t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		return fmt.Errorf("%s still runs after %s:\n%s", p.name, timeout, p.stderr.String())
	}
}

// Children lists the PIDs of the processes whose parent is pid (from /proc).
func Children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, child)
		}
	}
	return kids
}

// Alive reports whether a process with this PID exists and is not a zombie.
func Alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && len(stat) > i+2 && stat[i+2] != 'Z'
}

// ReadEnvFile reads the KEY=value lines of an env file that a server script
// (scripts/mariadb.sh, scripts/influxdb.sh, ...) writes; a missing file is
// an empty map.
func ReadEnvFile(path string) map[string]string {
	env := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return env
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

// SendFlows runs flowgen with cfg (at most 3 minutes) and returns the
// totals it sent; an error fails the test.
func SendFlows(t testing.TB, cfg flowgen.Config) flowgen.Totals {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tot, err := flowgen.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("flowgen: %v", err)
	}
	return tot
}
