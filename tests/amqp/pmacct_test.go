package amqp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/testamqp"
	"github.com/flowline/flowline/internal/testbin"
)

// nfacctd finds nfacctd: under CI it must be installed.
func nfacctd(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nfacctd", "/usr/sbin/nfacctd"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nfacctd is not installed (apt-get install pmacct)")
	}
	t.Skip("nfacctd is not installed")
	return ""
}

// pmacct's nfacctd publishes with its amqp plugin (JSON, multi-value
// messages, markers) while its print plugin writes the same aggregates to
// a file; Flowline's inputs.amqp consumes the messages into duckdb, and the
// stored sums equal nfacctd's own print of the stream.
func TestNfacctdPublishesFlowlineStores(t *testing.T) {
	br := testamqp.Find(t)
	bin := nfacctd(t)
	if br.PmacctHost == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("the test broker has no listener on port 5672 for nfacctd (scripts/rabbitmq.sh)")
		}
		t.Skip("the test broker has no listener on port 5672 for nfacctd")
	}
	n := newNames()
	cport := testbin.FreeTCPPort(t)
	central := startCentral(t, t.TempDir(), centralConfig(br, n, cport, ""), cport)

	dir := t.TempDir()
	port := testbin.FreeUDPPort(t)
	printFile := filepath.Join(dir, "print.json")
	agg := "src_host,dst_host,src_port,dst_port,proto,tcpflags"
	conf := strings.Join([]string{
		"daemonize: false",
		"nfacctd_ip: 127.0.0.1",
		fmt.Sprintf("nfacctd_port: %d", port),
		"nfacctd_time_new: true",
		"timestamps_utc: true",
		"plugins: print[p], amqp[a]",
		"aggregate[p]: " + agg,
		"aggregate[a]: " + agg,
		"print_output[p]: json",
		"print_output_file[p]: " + printFile,
		"print_output_file_append[p]: true",
		"print_refresh_time[p]: 2",
		"print_history[p]: 1m",
		"print_history_roundoff[p]: m",
		"amqp_host[a]: " + br.PmacctHost,
		"amqp_user[a]: flowline",
		"amqp_passwd[a]: flowline",
		"amqp_exchange[a]: " + n.exchange,
		"amqp_exchange_type[a]: direct",
		"amqp_routing_key[a]: acct",
		"amqp_persistent_msg[a]: true",
		"amqp_multi_values[a]: 65536",
		"amqp_markers[a]: true",
		"amqp_refresh_time[a]: 2",
		"amqp_history[a]: 1m",
		"amqp_history_roundoff[a]: m",
		"logfile: " + filepath.Join(dir, "nfacctd.log"),
	}, "\n") + "\n"
	confPath := filepath.Join(dir, "nfacctd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", confPath)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	logOf := func() string { b, _ := os.ReadFile(filepath.Join(dir, "nfacctd.log")); return string(b) }
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logOf(), "waiting for NetFlow") {
		if time.Now().After(deadline) {
			t.Fatalf("nfacctd did not start:\n%s", logOf())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // the plugins start after the core
	tot := testbin.SendFlows(t, flowgenConfig(port, 200_000, 40_000, 9))
	time.Sleep(4 * time.Second) // both plugins purge every 2 s
	syscall.Kill(-pgid, syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("nfacctd did not exit:\n%s", logOf())
	}
	// The plugins are forked children: let them finish.
	for i := 0; i < 100 && syscall.Kill(-pgid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	lines, packets, bytes := testbin.Sums(t, printFile)
	if lines == 0 {
		t.Fatalf("nfacctd printed nothing:\n%s", logOf())
	}
	waitConsumed(t, br, n, central, 2*time.Minute)
	markers := testbin.Metric(t, central.metrics, "flowline_amqp_markers_received_total")
	msgs := testbin.Metric(t, central.metrics, "flowline_amqp_messages_received_total")
	central.Stop()
	got := totals(t, central)
	if got.packets != packets || got.bytes != bytes {
		t.Fatalf("Flowline stored %d packets, %d bytes from nfacctd's messages; nfacctd printed %d packets, %d bytes in %d lines (flowgen sent %d packets)\nnfacctd:\n%s\ncentral:\n%s",
			got.packets, got.bytes, packets, bytes, lines, tot.FlowPackets, logOf(), central.Log())
	}
	if markers == 0 {
		t.Errorf("no purge_init/purge_close markers arrived (amqp_markers: true)")
	}
	t.Logf("nfacctd: %d print lines; %v messages (%v markers) -> %d rows; %d packets, %d bytes equal (flowgen sent %d packets)",
		lines, msgs, markers, got.rows, got.packets, got.bytes, tot.FlowPackets)
}

// receiver is a plain AMQP consumer in the shape of pmacct's
// examples/amqp/amqp_receiver.py (pika, an exclusive queue bound to the
// exchange with the routing key, JSON per line): it sums the purge events'
// packets and bytes until it saw want of them.
const receiver = `
import json, sys, time
import pika

url, exchange, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = pika.BlockingConnection(pika.URLParameters(url))
channel = conn.channel()
channel.exchange_declare(exchange=exchange, exchange_type='direct', durable=True)
queue = channel.queue_declare(queue='', exclusive=True).method.queue
channel.queue_bind(exchange=exchange, queue=queue, routing_key='acct')
print('ready', flush=True)
seen = {'purge': 0, 'purge_init': 0, 'purge_close': 0, 'packets': 0, 'bytes': 0}
deadline = time.time() + 60
for method, properties, body in channel.consume(queue, auto_ack=True, inactivity_timeout=1):
    if body is None:
        if seen['purge'] > 0:
            break  # a second without messages after some: the edge is done
        continue
    if body is not None:
        for line in body.decode('utf-8').splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            seen[obj['event_type']] += 1
            if obj['event_type'] == 'purge':
                seen['packets'] += obj['packets']
                seen['bytes'] += obj['bytes']
    if seen['purge'] >= want or time.time() > deadline:
        break
print(json.dumps(seen), flush=True)
`

// A consumer written for pmacct's messages reads Flowline's unchanged.
func TestPmacctReceiverReadsFlowline(t *testing.T) {
	br := testamqp.Find(t)
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import pika").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3-pika is not installed (scripts/deps.sh)")
		}
		t.Skip("python3-pika is not installed")
	}
	for _, c := range []struct{ name, output string }{
		{"single", ""},
		{"multi_values", `  multi_values = "64KiB"
  markers = true`},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newNames()
			eport, udp := testbin.FreeTCPPort(t), testbin.FreeUDPPort(t)
			edge := start(t, t.TempDir(), edgeConfig(br, n, udp, eport, "1m", c.output), eport)
			// The receiver's queue must exist before the edge publishes.
			script := filepath.Join(t.TempDir(), "amqp_receiver.py")
			os.WriteFile(script, []byte(receiver), 0o644)
			cmd := exec.Command(py, script, br.URL, n.exchange, "1000000000")
			out := &testbin.LockedBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() { cmd.Process.Kill() })
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(out.String(), "ready") {
				if time.Now().After(deadline) {
					t.Fatalf("receiver did not start: %s", out.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			tot := testbin.SendFlows(t, flowgenConfig(udp, 50_000, 50_000, 10))
			time.Sleep(300 * time.Millisecond)
			edge.Stop() // publishes every aggregate once
			<-done      // the receiver stops after a second without messages
			s := out.String()
			i := strings.LastIndex(s, "{")
			if i < 0 {
				t.Fatalf("receiver output: %s", s)
			}
			var seen map[string]uint64
			if err := jsonUnmarshal(s[i:], &seen); err != nil {
				t.Fatalf("receiver output %q: %v", s, err)
			}
			if seen["packets"] != tot.FlowPackets || seen["bytes"] != tot.FlowBytes {
				t.Fatalf("receiver summed %d packets, %d bytes; flowgen sent %d, %d (%v)", seen["packets"], seen["bytes"], tot.FlowPackets, tot.FlowBytes, seen)
			}
			if c.name == "multi_values" && (seen["purge_init"] == 0 || seen["purge_init"] != seen["purge_close"]) {
				t.Errorf("markers: %v", seen)
			}
			t.Logf("receiver: %v", seen)
		})
	}
}
