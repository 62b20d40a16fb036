package amqp

import (
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/testamqp"
)

// benchRecords is a batch of n aggregated records with distinct keys.
func benchRecords(n int) *core.Batch {
	b := records(n)
	for i := range b.Records {
		b.Records[i].SrcPort = uint16(i)
		b.Records[i].SrcAddr = b.Records[i].SrcAddr.Next()
	}
	return b
}

// BenchmarkEncode is the CPU cost of turning records into messages (no
// broker): pmacct's JSON in 64 KiB multi-value messages and Flowline's
// binary batches.
func BenchmarkEncode(b *testing.B) {
	for _, c := range []struct {
		name   string
		format string
		mv     core.Size
	}{{"json-64KiB", "json", 64 << 10}, {"flowline", "flowline", 0}} {
		b.Run(c.name, func(b *testing.B) {
			o := New()
			o.Format, o.MultiValues, o.TimestampsUTC = c.format, c.mv, true
			o.URL = []string{"amqp://127.0.0.1/"}
			if err := o.Init(core.NewEnv("bench", b.TempDir())); err != nil {
				b.Fatal(err)
			}
			batch := benchRecords(10000)
			var bytes int
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bytes = 0
				for _, m := range o.encode(batch) {
					bytes += len(m)
				}
			}
			b.ReportMetric(float64(b.N)*10000/b.Elapsed().Seconds(), "flows/s")
			b.ReportMetric(float64(bytes)/10000, "bytes/flow")
		})
	}
}

// BenchmarkPublish publishes 10,000-record batches to the test broker with
// confirms and persistent messages (a durable exchange and queue), and
// reports flows and broker messages per second.
func BenchmarkPublish(b *testing.B) {
	br := testamqp.Find(b)
	for _, c := range []struct {
		name   string
		format string
		mv     core.Size
	}{{"json-64KiB", "json", 64 << 10}, {"flowline", "flowline", 0}} {
		b.Run(c.name, func(b *testing.B) {
			_, ch := br.Dial(b)
			ex, q := testamqp.Name("bench"), testamqp.Name("bench")
			if err := ch.ExchangeDeclare(ex, "direct", true, false, false, false, nil); err != nil {
				b.Fatal(err)
			}
			if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
				b.Fatal(err)
			}
			if err := ch.QueueBind(q, "acct", ex, false, nil); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				_, ch := br.Dial(b)
				ch.QueueDelete(q, false, false, false)
				ch.ExchangeDelete(ex, false, false)
			})
			o := New()
			o.URL = []string{br.URL}
			o.Exchange, o.Format, o.MultiValues, o.Persistent, o.TimestampsUTC = ex, c.format, c.mv, true, true
			if err := o.Init(core.NewEnv("bench", b.TempDir())); err != nil {
				b.Fatal(err)
			}
			if err := o.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			defer o.Close(ctx)
			batch := benchRecords(10000)
			msgs := len(o.encode(batch))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := o.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			s := time.Since(start).Seconds()
			if !o.spool.Empty() {
				b.Fatal("the broker did not take everything: messages spooled")
			}
			b.ReportMetric(float64(b.N)*10000/s, "flows/s")
			b.ReportMetric(float64(b.N*msgs)/s, "msgs/s")
		})
	}
}
