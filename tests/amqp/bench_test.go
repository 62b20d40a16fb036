package amqp

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/wire"
	"github.com/flowline/flowline/internal/testamqp"
	"github.com/flowline/flowline/plugins/common/amqpconn"
	"github.com/flowline/flowline/plugins/common/pmacct"
	inamqp "github.com/flowline/flowline/plugins/inputs/amqp"
	"github.com/flowline/flowline/plugins/outputs/duckdb"
)

// BenchmarkConsumeIntoDuckDB: messages of 10,000 aggregated records waiting
// in a durable queue (Flowline's binary batches, or pmacct's JSON in 64 KiB
// or 1 MiB multi-value messages) are consumed by inputs.amqp and written to the
// duckdb store with their origin (deduplicated), acked after each commit.
// Reports flows/s from the first delivery to the last ack.
func BenchmarkConsumeIntoDuckDB(b *testing.B) {
	br := testamqp.Find(b)
	for _, format := range []string{"flowline", "json-64KiB", "json-1MiB"} {
		b.Run(format, func(b *testing.B) {
			ctx := context.Background()
			_, ch := br.Dial(b)
			ex, q := testamqp.Name("bench"), testamqp.Name("bench")
			b.Cleanup(func() {
				_, ch := br.Dial(b)
				ch.QueueDelete(q, false, false, false)
				ch.ExchangeDelete(ex, false, false)
			})
			const perMsg, msgs = 10000, 20
			// Messages: distinct keys per message and bin.
			bin := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
			var bodies [][]byte
			enc := pmacct.Encoder{Loc: time.UTC}
			for m := 0; m < msgs; m++ {
				recs := make([]core.Record, perMsg)
				for i := range recs {
					r := &recs[i]
					k := m*perMsg + i
					r.SrcAddr = netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)})
					r.DstAddr = netip.AddrFrom4([4]byte{172, 16, 0, byte(k % 50)})
					r.SrcPort, r.DstPort, r.Proto, r.TCPFlags = uint16(k), 443, 6, 0x1b
					r.Packets, r.Bytes = uint64(1+k%17), uint64(100*(1+k%17))
					r.StampInserted, r.StampUpdated = bin.UnixNano(), bin.Add(time.Minute).UnixNano()
					r.Present = core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldProto |
						core.FieldTCPFlags | core.FieldPackets | core.FieldBytes | core.FieldStamps
				}
				if format == "flowline" {
					bodies = append(bodies, wire.AppendRecords(nil, 0, recs))
					continue
				}
				mv := 64 << 10
				if format == "json-1MiB" {
					mv = 1 << 20
				}
				var body []byte
				for i := range recs {
					line := enc.AppendJSON(nil, &recs[i])
					if len(body)+len(line) >= mv {
						bodies = append(bodies, body)
						body = nil
					}
					body = append(body, line...)
				}
				bodies = append(bodies, body)
			}
			ctype := wire.ContentType
			if format != "flowline" {
				ctype = "application/json"
			}
			var seq int64
			publish := func() {
				for _, body := range bodies {
					seq++
					if err := ch.Publish(ex, "acct", false, false, amqp091.Publishing{ContentType: ctype, DeliveryMode: amqp091.Persistent, Body: body,
						Headers: amqp091.Table{amqpconn.HeaderWriter: "bench", amqpconn.HeaderSeq: seq}}); err != nil {
						b.Fatal(err)
					}
				}
			}
			dir := b.TempDir()
			store, err := duckdb.Open(ctx, duckdb.Options{Path: filepath.Join(dir, "flowline.duckdb"), Archive: filepath.Join(dir, "archive")})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			in := inamqp.New()
			in.URL = amqpconn.URLs{br.URL}
			in.Exchange, in.Queue, in.Prefetch, in.TimestampsUTC = ex, q, 64, true
			if err := in.Init(core.NewEnv("bench", "")); err != nil {
				b.Fatal(err)
			}
			batches := make(chan *core.Batch, 64)
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go in.Start(cctx, func(bt *core.Batch) bool { batches <- bt; return true })
			// The input declares the queue: wait for it, then fill it.
			for deadline := time.Now().Add(10 * time.Second); ; {
				if _, err := ch.QueueDeclarePassive(q, true, false, false, false, amqp091.Table{"x-queue-type": "classic"}); err == nil {
					break
				}
				_, ch = br.Dial(b)
				if time.Now().After(deadline) {
					b.Fatal("queue not declared")
				}
				time.Sleep(20 * time.Millisecond)
			}
			b.ResetTimer()
			var flows int
			var busy time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				publish()
				b.StartTimer()
				start := time.Now()
				for n := 0; n < len(bodies); n++ {
					bt := <-batches
					if _, err := store.WriteFrom(ctx, bt.Records, bt.Origin); err != nil {
						b.Fatal(err)
					}
					flows += len(bt.Records)
					bt.Release()
				}
				busy += time.Since(start)
			}
			b.ReportMetric(float64(flows)/busy.Seconds(), "flows/s")
			b.ReportMetric(float64(len(bodies)), "msgs/round")
		})
	}
}
