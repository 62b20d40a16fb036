package cluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/plugins/common/envelope"
)

// cpuSeconds is the user+system CPU time of a process so far.
func cpuSeconds(t testing.TB, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// counterSink counts the data datagrams it receives.
type counterSink struct {
	conn *net.UDPConn
	data atomic.Uint64
}

func newCounterSink(b *testing.B) *counterSink {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = c.SetReadBuffer(64 << 20)
	s := &counterSink{conn: c}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if h, p, err := envelope.Parse(buf[:n]); err == nil && h.Type == envelope.TypeProbe {
				continue
			} else if err == nil {
				if k, _ := envelope.Scan(p); k&envelope.KindData != 0 {
					s.data.Add(1)
				}
			}
		}
	}()
	b.Cleanup(func() { c.Close() })
	return s
}

// BenchmarkReplicator: flowgen at 1,050,000 flows/s (35,000 datagrams of 30
// flows) -> the replicator with GOMAXPROCS=1 (rr) -> three counting
// receivers. Reports the data datagrams lost, the flows/s delivered and the
// replicator's CPU (cores used).
func BenchmarkReplicator(b *testing.B) {
	if flowlineBin == "" {
		b.Skip("needs the binary")
	}
	var sinks []*counterSink
	var recv []string
	for i := 0; i < 3; i++ {
		s := newCounterSink(b)
		sinks = append(sinks, s)
		recv = append(recv, s.conn.LocalAddr().String())
	}
	dir := b.TempDir()
	port := freeUDPPort(b)
	rm := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(b))
	cfg := strings.Replace(replicatorConfig(dir, port, rm, recv, "rr", false), `probe_interval = "200ms"`, `liveness = "none"`, 1)
	cfg = strings.Replace(cfg, `  probe_timeout = "1s"`+"\n", "", 1)
	rep := start(b, "replicator", dir, rm, cfg, "GOMAXPROCS=1")
	for i := 0; i < b.N; i++ {
		var before uint64
		for _, s := range sinks {
			before += s.data.Load()
		}
		cpu0 := cpuSeconds(b, rep.Pid())
		start := time.Now()
		tot, err := flowgen.Run(b.Context(), flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", port), Version: 10, Flows: 5_250_000,
			Rate: 1_050_000, Seed: int64(i), SourceIDs: 4, TemplateInterval: 10 * time.Second, TemplateEvery: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start).Seconds()
		time.Sleep(500 * time.Millisecond)
		cpu := cpuSeconds(b, rep.Pid()) - cpu0
		var got uint64
		for _, s := range sinks {
			got += s.data.Load()
		}
		got -= before
		dataSent := tot.Packets - tot.TemplatePackets
		loss := 1 - float64(got)/float64(dataSent)
		b.ReportMetric(float64(tot.Flows)/el, "flows/s")
		b.ReportMetric(100*loss, "%loss")
		b.ReportMetric(cpu/el, "cores")
		b.Logf("sent %d data datagrams (%d flows) in %.2fs; receivers got %d; loss %.4f%%; replicator CPU %.2f cores",
			dataSent, tot.Flows, el, got, 100*loss, cpu/el)
	}
	rep.Stop()
}

// BenchmarkCollectors compares one collector fed by flowgen directly with
// three collectors behind the replicator (rr), at the same offered rate
// (RATE flows/s, default 300,000, for 5 s). Reports flows/s stored and loss.
func BenchmarkCollectors(b *testing.B) {
	if flowlineBin == "" {
		b.Skip("needs the binary")
	}
	rate := uint64(300_000)
	if v, err := strconv.ParseUint(os.Getenv("RATE"), 10, 64); err == nil {
		rate = v
	}
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("collectors=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				var procs []*proc
				var recv []string
				for j := 0; j < n; j++ {
					cdir := filepath.Join(dir, fmt.Sprintf("c%d", j+1))
					port := freeUDPPort(b)
					m := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(b))
					procs = append(procs, start(b, fmt.Sprintf("collector %d", j+1), cdir, m, collectorConfig(cdir, port, m, "")))
					recv = append(recv, fmt.Sprintf("127.0.0.1:%d", port))
				}
				target := recv[0]
				var rep *proc
				if n > 1 {
					port := freeUDPPort(b)
					rm := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(b))
					rep = start(b, "replicator", filepath.Join(dir, "r"), rm, replicatorConfig(filepath.Join(dir, "r"), port, rm, recv, "rr", false))
					target = fmt.Sprintf("127.0.0.1:%d", port)
					time.Sleep(500 * time.Millisecond)
				}
				start := time.Now()
				tot, err := flowgen.Run(b.Context(), flowgen.Config{Target: target, Version: 10, Flows: 5 * rate, Rate: rate, Seed: 7,
					SourceIDs: 4, TemplateInterval: 10 * time.Second, TemplateEvery: 1 << 30})
				if err != nil {
					b.Fatal(err)
				}
				el := time.Since(start).Seconds()
				time.Sleep(time.Second)
				if rep != nil {
					rep.Stop()
				}
				var stored uint64
				for _, p := range procs {
					p.Stop()
					stored += sums(b, filepath.Join(p.dir, "flows.jsonl")).packets
				}
				loss := 1 - float64(stored)/float64(tot.FlowPackets)
				b.ReportMetric(float64(tot.Flows)/el, "offered-flows/s")
				b.ReportMetric((1-loss)*float64(tot.Flows)/el, "stored-flows/s")
				b.ReportMetric(100*loss, "%loss")
				b.Logf("%d collector(s): offered %.0f flows/s; stored %d of %d flow packets; loss %.3f%%", n, float64(tot.Flows)/el, stored, tot.FlowPackets, 100*loss)
			}
		})
	}
}
