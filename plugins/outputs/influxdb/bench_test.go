package influxdb

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/influxtest"
)

// benchTags are the tags of the benchmarks: a realistic traffic dashboard
// (4 exporters x 2 protocols x 50 x 50 AS pairs x 4 interfaces: up to
// 80,000 series).
var benchTags = []string{"peer_src_ip", "proto", "src_as", "dst_as", "in_iface"}

// benchRecords is one refresh of an aggregate: n records with distinct tag
// sets in one bin.
func benchRecords(n int, bin int64) []core.Record {
	recs := make([]core.Record, n)
	for i := range recs {
		r := &recs[i]
		r.Exporter = netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%4)})
		r.Proto = []uint8{6, 17}[(i/4)%2]
		r.SrcAS, r.DstAS = uint32(64500+(i/8)%50), uint32(65000+(i/400)%50)
		r.InIface = uint32(1 + (i/20000)%4)
		r.Packets, r.Bytes, r.Flows = uint64(1+i%7), uint64(64+i%1500), 1
		r.StampInserted = bin
	}
	return recs
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWritePoints is Flowline's CPU per point without a server: Write
// turns aggregate records into running totals and lines of line protocol
// (the sender is not started; the spool is emptied between rounds).
// "refresh" rewrites the totals of one bin, "new-bin" opens a bin per Write.
func BenchmarkWritePoints(b *testing.B) {
	for _, newBin := range []bool{false, true} {
		name := map[bool]string{false: "refresh", true: "new-bin"}[newBin]
		b.Run(name, func(b *testing.B) {
			o := New()
			o.Bucket, o.Tags, o.BufferPoints = "b", benchTags, 1<<30
			env := core.NewEnv("influxdb", "")
			env.Primitives = benchTags
			if err := o.Init(env); err != nil {
				b.Fatal(err)
			}
			const n = 10_000
			bin := time.Now().Truncate(time.Minute).UnixNano()
			batch := core.NewBatch()
			batch.Records = benchRecords(n, bin)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if newBin {
					for j := range batch.Records {
						batch.Records[j].StampInserted = bin + int64(i)*int64(time.Minute)
					}
				}
				o.Write(context.Background(), batch)
				if i%50 == 49 {
					b.StopTimer()
					for !o.buf.Empty() {
						g, _ := o.buf.Peek(1 << 30)
						o.buf.Commit(g)
					}
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/point")
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "points/s")
		})
	}
}

// BenchmarkInfluxDB posts points into the real InfluxDB 1.8 of the test
// suite: points/s end to end (Write to the server's 204) and Flowline's CPU
// per point (this process's user+system time; the server runs in another
// process), for gzip on and off and several batch sizes.
func BenchmarkInfluxDB(b *testing.B) {
	s := influxtest.InfluxDB(b)
	for _, enc := range []string{"gzip", "identity"} {
		for _, size := range []int{1000, 5000, 20000} {
			b.Run(fmt.Sprintf("%s/batch=%d", enc, size), func(b *testing.B) {
				db := "flowline_bench"
				s.CreateDB(b, db)
				o := New()
				o.URL, o.Token, o.Bucket = s.URL, s.Token, db
				o.Tags, o.ContentEncoding, o.BatchSize, o.BufferPoints = benchTags, enc, size, 1<<30
				env := core.NewEnv("influxdb", "")
				env.Primitives = benchTags
				if err := o.Init(env); err != nil {
					b.Fatal(err)
				}
				o.Connect(context.Background())
				const n = 80_000
				start := time.Now().Truncate(time.Minute).Add(-24 * time.Hour)
				batches := make([]*core.Batch, b.N)
				for i := range batches {
					batches[i] = core.NewBatch()
					batches[i].Records = benchRecords(n, start.Add(time.Duration(i)*time.Minute).UnixNano())
				}
				cpu0 := cpuTime()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					o.Write(context.Background(), batches[i])
				}
				for !o.buf.Empty() {
					time.Sleep(time.Millisecond)
				}
				b.StopTimer()
				cpu := cpuTime() - cpu0
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				o.Close(ctx)
				cancel()
				points := float64(b.N * n)
				b.ReportMetric(points/b.Elapsed().Seconds(), "points/s")
				b.ReportMetric(float64(cpu.Nanoseconds())/points, "cpu-ns/point")
				if p, _, _ := s.Sums(b, db, "flows"); p == 0 {
					b.Fatal("nothing arrived")
				}
			})
		}
	}
}
