package pmacct

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freeUDPPort asks the kernel for a free loopback UDP port.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// proc is a child process started in its own process group, so that stopping
// it reaches the children it forks (nfacctd's plugins) by group id.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

func startProc(t *testing.T, name string, args []string, dir string) *proc {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	out := &bytes.Buffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { p.kill() })
	return p
}

// stop sends SIGTERM (to the group) and waits up to d, then SIGKILLs.
func (p *proc) stop(t *testing.T, sig syscall.Signal, d time.Duration) {
	t.Helper()
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-p.done:
	case <-time.After(d):
		t.Errorf("%s did not exit within %v after %v; killing it", p.name, d, sig)
		p.kill()
	}
	// Let forked plugin processes of the group finish writing.
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) kill() {
	if p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	p.done <- nil // let another kill/stop return at once
}

// sendAll sends the datagrams to 127.0.0.1:port with a small pause between
// them (NetFlow collectors read one datagram at a time).
func sendAll(t *testing.T, port int, pkts [][]byte) {
	t.Helper()
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range pkts {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readLines returns the non-empty lines of a file ("" when missing).
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// waitUDPListening waits until something is bound to the UDP port (bounded).
func waitUDPListening(t *testing.T, p *proc, port int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited early: %v\n%s", p.name, err, p.out.String())
		default:
		}
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return // port taken: the collector is bound
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not bind udp port %d within %v\n%s", p.name, port, d, p.out.String())
}

// nfacctdConfig writes an nfacctd config and returns its path.
func nfacctdConfig(t *testing.T, dir string, port int, aggregate, format, outFile string, extra ...string) string {
	t.Helper()
	lines := []string{
		"daemonize: false",
		"nfacctd_ip: 127.0.0.1",
		fmt.Sprintf("nfacctd_port: %d", port),
		"nfacctd_time_new: true",
		"timestamps_utc: true",
		"plugins: print[p]",
		"aggregate[p]: " + aggregate,
		"print_output[p]: " + format,
		"print_output_file[p]: " + outFile,
		"print_output_file_append[p]: true",
		"print_refresh_time[p]: 2",
		"print_history[p]: 1m",
		"print_history_roundoff[p]: m",
		"logfile: " + filepath.Join(dir, "nfacctd.log"),
	}
	lines = append(lines, extra...)
	path := filepath.Join(dir, "nfacctd.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
