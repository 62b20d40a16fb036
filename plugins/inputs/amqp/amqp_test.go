package amqp

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/wire"
	"github.com/flowline/flowline/internal/testamqp"
	"github.com/flowline/flowline/internal/testbin"
	"github.com/flowline/flowline/plugins/common/amqpconn"
)

// Good messages of every format around garbage: the good records all
// arrive (with the publisher's origin), the garbage is counted by kind and
// dead-lettered, and every message leaves the queue once its batch is done.
func TestConsumeFormatsAndGarbage(t *testing.T) {
	br := testamqp.Find(t)
	_, ch := br.Dial(t)
	ex, q, dlx, dlq := testamqp.Name("ex"), testamqp.Name("q"), testamqp.Name("dlx"), testamqp.Name("dlq")
	t.Cleanup(func() {
		_, ch := br.Dial(t)
		ch.QueueDelete(q, false, false, false)
		ch.QueueDelete(dlq, false, false, false)
		ch.ExchangeDelete(ex, false, false)
		ch.ExchangeDelete(dlx, false, false)
	})
	if err := ch.ExchangeDeclare(dlx, "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(dlq, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(dlq, "", dlx, false, nil); err != nil {
		t.Fatal(err)
	}
	in := New()
	in.URL = amqpconn.URLs{br.URL}
	in.Exchange, in.Queue, in.Durable, in.DeadLetterExchange, in.TimestampsUTC = ex, q, false, dlx, true
	env := core.NewEnv("amqp-in", "")
	if err := in.Init(env); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []*core.Batch
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- in.Start(cctx, func(b *core.Batch) bool {
			mu.Lock()
			got = append(got, b)
			mu.Unlock()
			return true
		})
	}()
	// Wait for the queue to exist, then publish.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := ch.QueueDeclarePassive(q, false, false, false, false, amqp091.Table{"x-queue-type": "classic", "x-dead-letter-exchange": dlx}); err == nil {
			break
		}
		_, ch = br.Dial(t)
		if time.Now().After(deadline) {
			t.Fatal("queue not declared")
		}
		time.Sleep(50 * time.Millisecond)
	}
	pub := func(ctype string, body []byte, h amqp091.Table) {
		t.Helper()
		if err := ch.Publish(ex, "acct", false, false, amqp091.Publishing{ContentType: ctype, Body: body, Headers: h}); err != nil {
			t.Fatal(err)
		}
	}
	rec := `{"event_type": "purge", "peer_ip_src": "192.0.2.1", "ip_src": "10.0.0.1", "ip_dst": "10.0.0.2", "port_src": 1, "port_dst": 80, "tcp_flags": "24", "ip_proto": "tcp", "stamp_inserted": "2026-01-02 03:00:00", "stamp_updated": "2026-01-02 03:04:05", "packets": 2, "bytes": 300}`
	pub("application/json", []byte(`{"event_type": "purge_init", "writer_id": "nfacctd/1"}`), nil)
	pub("application/json", []byte(rec), nil)
	pub("application/json", []byte(rec+"\n"+rec+"\n"), nil)
	pub("application/json", []byte("not json"), nil)
	pub("application/json", []byte(`{"event_type": "purge", "packets": "many"}`), nil)
	pub("application/json", []byte(`{"event_type": "purge", "ip_src": "10.0.0.300"}`), nil)
	b := core.NewBatch()
	r := b.AppendRecord()
	r.Packets, r.Bytes, r.Present = 7, 700, core.FieldPackets|core.FieldBytes
	bin := wire.AppendRecords(nil, 0, b.Records)
	pub(wire.ContentType, bin, amqp091.Table{amqpconn.HeaderWriter: "edge-1", amqpconn.HeaderSeq: int64(42)})
	pub(wire.ContentType, bin[:len(bin)-2], nil)
	pub("application/json", []byte(`{"event_type": "purge_close", "writer_id": "nfacctd/1", "purged_entries": 3}`), nil)

	// The 3 good messages make batches (pmacct's, without an origin, may be
	// gathered into one); acknowledge them as outputs would.
	var batches []*core.Batch
	var packets uint64
	deadline = time.Now().Add(10 * time.Second)
	for packets < 13 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		batches = append([]*core.Batch(nil), got...)
		mu.Unlock()
		packets = 0
		for _, b := range batches {
			for i := range b.Records {
				packets += b.Records[i].Packets
			}
		}
	}
	if packets != 2+4+7 {
		t.Fatalf("packets %d, want 13", packets)
	}
	var withOrigin *core.Batch
	for _, b := range batches {
		if b.Origin.Writer != "" {
			withOrigin = b
		}
	}
	if withOrigin == nil || withOrigin.Origin != (core.Origin{Writer: "edge-1", Seq: 42}) || len(withOrigin.Records) != 1 {
		t.Errorf("the binary message's batch: %+v", withOrigin)
	}
	if r := batches[0].Records[0]; r.TCPFlags != 24 || r.Proto != 6 || r.DstPort != 80 || r.StampUpdated != time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano() {
		t.Errorf("record %+v", r)
	}
	for _, b := range batches {
		b.Release()
	}
	// Acked: the queue empties; the 4 bad ones are in the dead-letter queue.
	deadline = time.Now().Add(10 * time.Second)
	for {
		qi, err1 := ch.QueueDeclarePassive(q, false, false, false, false, amqp091.Table{"x-queue-type": "classic", "x-dead-letter-exchange": dlx})
		di, err2 := ch.QueueDeclarePassive(dlq, false, false, false, false, nil)
		if err1 == nil && err2 == nil && qi.Messages == 0 && di.Messages == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %d messages (%v), dead letters %d (%v); want 0 and 4", qi.Messages, err1, di.Messages, err2)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A batch an output gave up goes back to the queue and comes again.
func TestFailedBatchRequeued(t *testing.T) {
	br := testamqp.Find(t)
	_, ch := br.Dial(t)
	ex, q := testamqp.Name("ex"), testamqp.Name("q")
	t.Cleanup(func() {
		_, ch := br.Dial(t)
		ch.QueueDelete(q, false, false, false)
		ch.ExchangeDelete(ex, false, false)
	})
	in := New()
	in.URL = amqpconn.URLs{br.URL}
	in.Exchange, in.Queue, in.Durable = ex, q, false
	if err := in.Init(core.NewEnv("amqp-in", "")); err != nil {
		t.Fatal(err)
	}
	got := make(chan *core.Batch, 10)
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go in.Start(cctx, func(b *core.Batch) bool { got <- b; return true })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := ch.QueueDeclarePassive(q, false, false, false, false, amqp091.Table{"x-queue-type": "classic"}); err == nil {
			break
		}
		_, ch = br.Dial(t)
		if time.Now().After(deadline) {
			t.Fatal("queue not declared")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ch.Publish(ex, "acct", false, false, amqp091.Publishing{ContentType: "application/json", Body: []byte(`{"event_type": "purge", "packets": 1}`)})
	b := <-got
	b.Fail()
	b.Release()
	select {
	case b := <-got:
		if b.Records[0].Packets != 1 {
			t.Errorf("redelivered %+v", b.Records[0])
		}
		b.Release()
	case <-time.After(10 * time.Second):
		t.Fatal("not redelivered")
	}
}

// pmacct's one-object messages are gathered into batches (one store
// transaction for many messages); each message is acked when its batch is.
func TestGatherSingleMessages(t *testing.T) {
	br := testamqp.Find(t)
	_, ch := br.Dial(t)
	ex, q := testamqp.Name("ex"), testamqp.Name("q")
	t.Cleanup(func() {
		_, ch := br.Dial(t)
		ch.QueueDelete(q, false, false, false)
		ch.ExchangeDelete(ex, false, false)
	})
	// The queue exists before the messages do.
	if err := ch.ExchangeDeclare(ex, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp091.Table{"x-queue-type": "classic"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, "acct", ex, false, nil); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for i := 0; i < n; i++ {
		ch.Publish(ex, "acct", false, false, amqp091.Publishing{ContentType: "application/json", Body: []byte(`{"event_type": "purge", "packets": 1}`)})
	}
	in := New()
	in.URL = amqpconn.URLs{br.URL}
	in.Exchange, in.Queue, in.Prefetch = ex, q, 500
	if err := in.Init(core.NewEnv("amqp-in", "")); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batches, records := 0, 0
	done := make(chan struct{})
	go in.Start(cctx, func(b *core.Batch) bool {
		batches++
		records += len(b.Records)
		if records == n {
			close(done)
		}
		b.Release()
		return true
	})
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%d records in %d batches", records, batches)
	}
	if batches >= n/4 {
		t.Errorf("%d messages in %d batches: not gathered", n, batches)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := ch.QueueDeclarePassive(q, true, false, false, false, amqp091.Table{"x-queue-type": "classic"})
		if err == nil && st.Messages == 0 && in.pending.Load() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all acked: %d pending", in.pending.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d messages in %d batches", n, batches)
}

// Quorum and stream queues are declared and consumed like classic ones.
func TestQueueTypes(t *testing.T) {
	br := testamqp.Find(t)
	for _, qt := range []string{"quorum", "stream"} {
		t.Run(qt, func(t *testing.T) {
			_, ch := br.Dial(t)
			ex, q := testamqp.Name("ex"), testamqp.Name("q")
			t.Cleanup(func() {
				_, ch := br.Dial(t)
				ch.QueueDelete(q, false, false, false)
				ch.ExchangeDelete(ex, false, false)
			})
			in := New()
			in.URL = amqpconn.URLs{br.URL}
			in.Exchange, in.Queue, in.QueueType = ex, q, qt
			env := core.NewEnv("amqp-in", "")
			logs := &testbin.LockedBuffer{}
			env.Logger = slog.New(slog.NewTextHandler(logs, nil))
			if err := in.Init(env); err != nil {
				t.Fatal(err)
			}
			got := make(chan *core.Batch, 10)
			cctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go in.Start(cctx, func(b *core.Batch) bool { got <- b; return true })
			// Declared, bound and consumed (a stream reports no consumers).
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(logs.String(), "msg=consuming") {
				if time.Now().After(deadline) {
					t.Fatalf("not consuming: %s", logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			b := core.NewBatch()
			r := b.AppendRecord()
			r.Packets, r.Present = 5, core.FieldPackets
			body := wire.AppendRecords(nil, 0, b.Records)
			for i := 1; i <= 3; i++ {
				ch.Publish(ex, "acct", false, false, amqp091.Publishing{ContentType: wire.ContentType, Body: body,
					Headers: amqp091.Table{amqpconn.HeaderWriter: "w", amqpconn.HeaderSeq: int64(i)}})
			}
			for i := 1; i <= 3; i++ {
				select {
				case b := <-got:
					if b.Origin.Seq != uint64(i) || b.Records[0].Packets != 5 {
						t.Errorf("batch %d: %+v %+v", i, b.Origin, b.Records[0])
					}
					b.Release()
				case <-time.After(10 * time.Second):
					t.Fatalf("message %d did not arrive", i)
				}
			}
		})
	}
}
