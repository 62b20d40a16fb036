package tee

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/plugins/common/envelope"
)

// drain is a receiver that reads and discards, as a collector's socket would.
func drain(b *testing.B) string {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = c.SetReadBuffer(32 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() { c.Close(); <-done })
	return c.LocalAddr().String()
}

// BenchmarkTee measures the replicator's hot path per core: batches of 256
// data datagrams of 30 flows (IPFIX, from flowgen), enveloped and sent round
// robin to three receivers on loopback. It reports datagrams and flows per
// second of the Write goroutine; the kernel's loopback delivery runs in the
// sending thread and is included.
func BenchmarkTee(b *testing.B) {
	for _, bal := range []string{"rr", "hash-exporter", "all"} {
		b.Run(bal, func(b *testing.B) {
			tee := newTee(b, "none", Pool{ID: 1, Receivers: []string{drain(b), drain(b), drain(b)}, Balance: bal})
			all := traffic(b, 10, 60000, "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")
			_ = tee.Write(context.Background(), all)
			batch := core.NewBatch()
			for _, p := range all.Packets {
				if k, _ := envelope.Scan(p.Data); k == envelope.KindData && len(batch.Packets) < 256 {
					batch.Packets = append(batch.Packets, p)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				_ = tee.Write(context.Background(), batch)
			}
			el := time.Since(start).Seconds()
			pkts := float64(b.N * len(batch.Packets))
			b.ReportMetric(pkts/el, "datagrams/s")
			b.ReportMetric(30*pkts/el, "flows/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
