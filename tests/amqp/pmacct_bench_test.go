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

// BenchmarkPurgeVsNfacctd publishes the same aggregates (flowgen's stream,
// 5-tuple and flags in 1-minute bins, emitted at once at the stop) with
// nfacctd's amqp plugin and with Flowline's outputs.amqp, both as JSON in
// 64 KiB multi-value persistent messages, and reports for each the records
// published per second and the broker's messages per second, from the stop
// signal until the queue holds the last message. Flowline waits for the
// broker's confirms; nfacctd does not. Run with -benchtime 1x.
func BenchmarkPurgeVsNfacctd(b *testing.B) {
	br := testamqp.Find(b)
	if br.PmacctHost == "" {
		b.Skip("no listener for nfacctd")
	}
	nf, err := exec.LookPath("nfacctd")
	if err != nil {
		b.Skip("nfacctd is not installed")
	}
	const flows = 500_000
	for _, who := range []string{"nfacctd", "flowline"} {
		b.Run(who, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				n := newNames()
				_, ch := br.Dial(b)
				if err := ch.ExchangeDeclare(n.exchange, "direct", true, false, false, false, nil); err != nil {
					b.Fatal(err)
				}
				if _, err := ch.QueueDeclare(n.queue, true, false, false, false, nil); err != nil {
					b.Fatal(err)
				}
				if err := ch.QueueBind(n.queue, "acct", n.exchange, false, nil); err != nil {
					b.Fatal(err)
				}
				defer ch.QueueDelete(n.queue, false, false, false)
				dir := b.TempDir()
				port := testbin.FreeUDPPort(b)
				var stop func()
				if who == "nfacctd" {
					conf := strings.Join([]string{
						"daemonize: false", "nfacctd_ip: 127.0.0.1", fmt.Sprintf("nfacctd_port: %d", port),
						"nfacctd_time_new: true", "plugins: amqp[a]", "aggregate[a]: src_host,dst_host,src_port,dst_port,proto,tcpflags",
						"amqp_host[a]: " + br.PmacctHost, "amqp_user[a]: flowline", "amqp_passwd[a]: flowline",
						"amqp_exchange[a]: " + n.exchange, "amqp_routing_key[a]: acct", "amqp_persistent_msg[a]: true",
						"amqp_multi_values[a]: 65536", "amqp_refresh_time[a]: 3600", "amqp_history[a]: 1m",
						"plugin_buffer_size: 102400", "plugin_pipe_size: 102400000",
						"logfile: " + filepath.Join(dir, "nfacctd.log"),
					}, "\n") + "\n"
					path := filepath.Join(dir, "nfacctd.conf")
					os.WriteFile(path, []byte(conf), 0o644)
					cmd := exec.Command(nf, "-f", path)
					cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
					if err := cmd.Start(); err != nil {
						b.Fatal(err)
					}
					pgid := cmd.Process.Pid
					go cmd.Wait()
					b.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
					time.Sleep(2 * time.Second)
					stop = func() { syscall.Kill(-pgid, syscall.SIGINT) }
				} else {
					mport := testbin.FreeTCPPort(b)
					e := start(b, dir, edgeConfig(br, n, port, mport, "1h", `  format = "json"
  multi_values = "64KiB"`), mport)
					stop = func() { go e.Stop() }
				}
				testbin.SendFlows(b, flowgenConfig(port, flows, 100_000, 12))
				time.Sleep(time.Second)
				begin := time.Now()
				stop()
				// Done when the queue has not grown for a second.
				last, lastChange := -1, time.Now()
				for time.Since(lastChange) < time.Second && time.Since(begin) < 2*time.Minute {
					d := queueDepth(b, br, n.queue)
					if d != last {
						last, lastChange = d, time.Now()
					}
					time.Sleep(20 * time.Millisecond)
				}
				took := lastChange.Sub(begin).Seconds()
				records := countRecords(b, br, n.queue)
				b.ReportMetric(float64(records)/took, "records/s")
				b.ReportMetric(float64(last)/took, "msgs/s")
				b.ReportMetric(float64(records), "records")
			}
		})
	}
}

// countRecords drains q and counts the purge objects in its messages.
func countRecords(b *testing.B, br testamqp.Broker, q string) int {
	_, ch := br.Dial(b)
	n := 0
	for {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			b.Fatal(err)
		}
		if !ok {
			return n
		}
		n += strings.Count(string(d.Body), `"event_type": "purge"`)
	}
}
