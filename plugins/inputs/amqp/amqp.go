// Package amqp is inputs.amqp: it consumes records from a RabbitMQ queue
// bound to an exchange, as published by outputs.amqp (JSON or Flowline's
// binary batches) or by pmacct's amqp plugin (JSON, one object a message or
// newline-separated objects), and emits them as record batches.
//
// Acknowledgement: every message becomes one batch that carries the
// message's acknowledgement (core.Batch.OnDone). The message is acked when
// every output that received its records committed them (or an aggregate
// absorbed them), and rejected back to the queue when one gave up. Messages
// of outputs.amqp carry their writer id and sequence (core.Batch.Origin), so
// that the storing outputs store a redelivered message once.
//
// Bad messages (not JSON, wrong types, truncated binary) are counted by
// kind, logged once per kind every 10 seconds, and rejected without requeue:
// to the dead-letter exchange when dead_letter_exchange is set, otherwise
// the broker drops them. They never stop the consumer.
//
// Life cycle: Init validates; Start connects, declares the exchange and the
// queue (declare = true), binds them and consumes until ctx ends, connecting
// again after a broken connection; at the end it cancels the consumer and
// keeps the connection open until the batches in flight are acknowledged
// (bounded), so that a clean stop redelivers nothing.
package amqp

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/ratelog"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/core/wire"
	"github.com/flowline/flowline/plugins/common/amqpconn"
	"github.com/flowline/flowline/plugins/common/pmacct"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Inputs, "amqp", sample, func() any { return New() })
}

// Interface guards.
var (
	_ core.Input        = (*AMQP)(nil)
	_ core.Initializer  = (*AMQP)(nil)
	_ core.Validator    = (*AMQP)(nil)
	_ core.WaitingInput = (*AMQP)(nil)
	_ core.AckingInput  = (*AMQP)(nil)
)

// AMQP is the inputs.amqp plugin and its configuration.
type AMQP struct {
	amqpconn.Config

	// Exchange, ExchangeType and ExchangeDurable as outputs.amqp (and
	// pmacct) declare them.
	Exchange        string `toml:"exchange"`
	ExchangeType    string `toml:"exchange_type"`
	ExchangeDurable *bool  `toml:"exchange_durable"`
	// Queue is the queue to consume (default "flowline").
	Queue string `toml:"queue"`
	// BindingKey binds the queue to the exchange (default "acct", pmacct's
	// routing key; "#" takes everything of a topic exchange).
	BindingKey string `toml:"binding_key"`
	// QueueType is classic, quorum or stream.
	QueueType string `toml:"queue_type"`
	// Durable declares the queue durable (default true; quorum and stream
	// queues always are).
	Durable bool `toml:"durable"`
	// Declare declares the exchange and the queue and binds them; false
	// uses what exists.
	Declare bool `toml:"declare"`
	// Prefetch is how many unacknowledged messages the broker sends ahead.
	Prefetch int `toml:"prefetch"`
	// Format is auto (by content type, then by content), json or flowline.
	Format string `toml:"format"`
	// TimestampsUTC reads JSON stamps as UTC instead of local time.
	TimestampsUTC bool `toml:"timestamps_utc"`
	// DeadLetterExchange receives the messages that cannot be decoded
	// (declared as the queue's x-dead-letter-exchange).
	DeadLetterExchange string `toml:"dead_letter_exchange"`

	log     *slog.Logger
	name    string
	dec     pmacct.Decoder
	m       inputMetrics
	bad     map[string]*ratelog.Limiter
	badMu   sync.Mutex
	pending atomic.Int64 // messages emitted and not yet acknowledged
	// gather is the batch being gathered from messages without an origin,
	// gathered the number of messages in it (consume's goroutine only).
	gather   *core.Batch
	gathered int
}

type inputMetrics struct {
	messages  prometheus.Counter
	records   prometheus.Counter
	markers   prometheus.Counter
	bad       *prometheus.CounterVec
	acked     prometheus.Counter
	requeued  prometheus.Counter
	reconnect prometheus.Counter
}

// New returns the plugin with its defaults.
func New() *AMQP {
	return &AMQP{Exchange: "pmacct", ExchangeType: "direct", Queue: "flowline", BindingKey: "acct",
		QueueType: "classic", Durable: true, Declare: true, Prefetch: 64, Format: "auto"}
}

// WaitsForPipeline says the broker can wait: emit blocks instead of dropping.
func (a *AMQP) WaitsForPipeline() bool { return true }

// AcksWhenDone says messages are acked when their batch is done.
func (a *AMQP) AcksWhenDone() bool { return true }

// Validate checks the keys that need no environment.
func (a *AMQP) Validate() error {
	if err := a.Config.Check(); err != nil {
		return err
	}
	switch a.ExchangeType {
	case "direct", "fanout", "topic":
	default:
		return fmt.Errorf("exchange_type = %q: want \"direct\", \"fanout\" or \"topic\"", a.ExchangeType)
	}
	switch a.QueueType {
	case "classic", "quorum", "stream":
	default:
		return fmt.Errorf("queue_type = %q: want \"classic\", \"quorum\" or \"stream\"", a.QueueType)
	}
	switch a.Format {
	case "auto", "json", "flowline":
	default:
		return fmt.Errorf("format = %q: want \"auto\", \"json\" or \"flowline\"", a.Format)
	}
	if a.Queue == "" {
		return errors.New("queue is required")
	}
	if a.Prefetch <= 0 || a.Prefetch > 65535 {
		return fmt.Errorf("prefetch = %d: want 1 to 65535", a.Prefetch)
	}
	if a.QueueType == "stream" && a.DeadLetterExchange != "" {
		return errors.New("dead_letter_exchange: stream queues do not dead-letter")
	}
	return nil
}

// Init validates and registers the metrics.
func (a *AMQP) Init(env *core.Env) error {
	if err := a.Validate(); err != nil {
		return err
	}
	a.log = env.Logger
	a.name = env.Name
	a.dec.Loc = time.Local
	if a.TimestampsUTC {
		a.dec.Loc = time.UTC
	}
	a.bad = map[string]*ratelog.Limiter{}
	c := func(name, help string) prometheus.Counter {
		x := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "amqp", Name: name, Help: help})
		env.Metrics.MustRegister(x)
		return x
	}
	a.m = inputMetrics{
		messages:  c("messages_received_total", "Messages received from the queue."),
		records:   c("records_received_total", "Records decoded from the messages."),
		markers:   c("markers_received_total", "pmacct purge_init/purge_close markers received (skipped)."),
		acked:     c("messages_acked_total", "Messages acknowledged after every output committed their records."),
		requeued:  c("messages_requeued_total", "Messages returned to the queue because an output gave their records up."),
		reconnect: c("reconnects_total", "Connections made to the broker after the first."),
	}
	a.m.bad = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "amqp", Name: "bad_messages_total",
		Help: "Messages that could not be decoded, by reason (rejected; dead-lettered when configured)."}, []string{"reason"})
	env.Metrics.MustRegister(a.m.bad)
	return nil
}

// Start consumes until ctx ends, connecting again when the connection breaks.
func (a *AMQP) Start(ctx context.Context, emit func(*core.Batch) bool) error {
	if a.log == nil {
		return errors.New("Start before Init")
	}
	backoff := 200 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		conn, ch, deliveries, err := a.open(ctx)
		if err != nil {
			if core.IsPermanent(err) {
				return err
			}
			a.log.Warn("broker not reachable; retrying", "retry_in", backoff, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		if !first {
			a.m.reconnect.Inc()
		}
		first = false
		backoff = 200 * time.Millisecond
		a.consume(ctx, ch, deliveries, emit)
		if ctx.Err() != nil {
			// Stop taking messages, and keep the connection for the acks of
			// the batches in flight (the pipeline drains after inputs stop).
			ch.Cancel(a.consumerTag(), false)
			go a.closeWhenAcked(conn)
			return nil
		}
		conn.Close()
		a.log.Warn("connection to the broker lost; reconnecting (unacknowledged messages are redelivered)")
	}
	return nil
}

func (a *AMQP) consumerTag() string { return "flowline-" + a.name }

// closeWhenAcked closes conn once every emitted batch was acknowledged, or
// after 60 seconds.
func (a *AMQP) closeWhenAcked(conn *amqp.Connection) {
	deadline := time.Now().Add(60 * time.Second)
	for a.pending.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	conn.Close()
}

// Stop is a no-op: Start returns when its context ends.
func (a *AMQP) Stop(ctx context.Context) error { return nil }

// open connects, declares and binds, and starts consuming.
func (a *AMQP) open(ctx context.Context) (*amqp.Connection, *amqp.Channel, <-chan amqp.Delivery, error) {
	conn, url, err := a.Dial(ctx, "flowline inputs.amqp "+a.name)
	if err != nil {
		return nil, nil, nil, err
	}
	fail := func(what string, err error) (*amqp.Connection, *amqp.Channel, <-chan amqp.Delivery, error) {
		conn.Close()
		var ae *amqp.Error
		if errors.As(err, &ae) && (ae.Code == amqp.PreconditionFailed || ae.Code == amqp.NotFound || ae.Code == amqp.AccessRefused) {
			return nil, nil, nil, core.Permanent(fmt.Errorf("%s: %w", what, err))
		}
		return nil, nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail("channel", err)
	}
	if a.Declare {
		durable := a.Durable
		if a.ExchangeDurable != nil {
			durable = *a.ExchangeDurable
		}
		if ch, err = amqpconn.DeclareExchange(conn, ch, a.Exchange, a.ExchangeType, durable); err != nil {
			return fail(fmt.Sprintf("exchange %q (exchange_type %q, durable %v)", a.Exchange, a.ExchangeType, durable), err)
		}
		args := amqp.Table{"x-queue-type": a.QueueType}
		if a.DeadLetterExchange != "" {
			args["x-dead-letter-exchange"] = a.DeadLetterExchange
		}
		qDurable := a.Durable || a.QueueType != "classic"
		if _, err := ch.QueueDeclare(a.Queue, qDurable, false, false, false, args); err != nil {
			return fail(fmt.Sprintf("queue %q (queue_type %q, durable %v)", a.Queue, a.QueueType, qDurable), err)
		}
		if err := ch.QueueBind(a.Queue, a.BindingKey, a.Exchange, false, nil); err != nil {
			return fail(fmt.Sprintf("binding queue %q to exchange %q with key %q", a.Queue, a.Exchange, a.BindingKey), err)
		}
	}
	if err := ch.Qos(a.Prefetch, 0, false); err != nil {
		return fail("prefetch", err)
	}
	var args amqp.Table
	if a.QueueType == "stream" {
		args = amqp.Table{"x-stream-offset": "first"}
	}
	deliveries, err := ch.ConsumeWithContext(ctx, a.Queue, a.consumerTag(), false, false, false, false, args)
	if err != nil {
		return fail(fmt.Sprintf("consuming queue %q", a.Queue), err)
	}
	a.log.Info("consuming", "url", url, "queue", a.Queue, "exchange", a.Exchange, "binding_key", a.BindingKey)
	return conn, ch, deliveries, nil
}

// consume turns deliveries into batches until ctx ends or the channel closes.
func (a *AMQP) consume(ctx context.Context, ch *amqp.Channel, deliveries <-chan amqp.Delivery, emit func(*core.Batch) bool) {
	defer a.flush(emit)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for {
		var d amqp.Delivery
		var ok, got bool
		if a.gather != nil {
			// Gathering: take what comes within gatherLinger, then hand on.
			linger.Reset(gatherLinger)
			select {
			case d, ok = <-deliveries:
				got = true
			case <-linger.C:
				a.flush(emit)
			case <-ctx.Done():
				return
			}
			linger.Stop() // (Go 1.23 timers: no stale tick after Stop)
		}
		if !got {
			select {
			case <-ctx.Done():
				return
			case d, ok = <-deliveries:
			}
		}
		if !ok || ctx.Err() != nil {
			if ok {
				d.Nack(false, true)
			}
			return
		}
		a.handle(d, emit)
	}
}

// gatherRecords bounds a batch gathered from messages without an origin
// (pmacct's, often one record each), as does half the prefetch in messages
// (so that acks return credit); it is handed on when no message came for
// gatherLinger.
const (
	gatherRecords = 4096
	gatherLinger  = 5 * time.Millisecond
)

// handle decodes one message. A message with an origin (outputs.amqp's)
// becomes a batch of its own that acks it; others are gathered into one
// batch that acks each of them.
func (a *AMQP) handle(d amqp.Delivery, emit func(*core.Batch) bool) {
	a.m.messages.Inc()
	b := core.NewBatch()
	markers, err := a.decode(b, d.ContentType, d.Body)
	if err != nil {
		b.Release()
		a.reject(d, err)
		return
	}
	a.m.markers.Add(float64(markers))
	if len(b.Records) == 0 {
		b.Release()
		d.Ack(false)
		a.m.acked.Inc()
		return
	}
	a.m.records.Add(float64(len(b.Records)))
	b.Origin = origin(d)
	if b.Origin.Writer != "" {
		a.flush(emit)
		a.ackWhenDone(b, d)
		emit(b) // a batch emit could not take was failed and released: requeued
		return
	}
	if a.gather == nil {
		a.gather = b
	} else {
		a.gather.Records = append(a.gather.Records, b.Records...)
		b.Release()
	}
	a.ackWhenDone(a.gather, d)
	a.gathered++
	if len(a.gather.Records) >= gatherRecords || a.gathered >= max(1, a.Prefetch/2) {
		a.flush(emit)
	}
}

// flush emits the gathered batch, if any.
func (a *AMQP) flush(emit func(*core.Batch) bool) {
	if a.gather == nil {
		return
	}
	b := a.gather
	a.gather, a.gathered = nil, 0
	emit(b)
}

// ackWhenDone acks d when b is done (every output committed it), or
// returns it to the queue when an output gave b up.
func (a *AMQP) ackWhenDone(b *core.Batch, d amqp.Delivery) {
	tag := d.DeliveryTag
	ackr := d.Acknowledger
	a.pending.Add(1)
	b.OnDone(func(ok bool) {
		defer a.pending.Add(-1)
		if ok {
			ackr.Ack(tag, false)
			a.m.acked.Inc()
			return
		}
		ackr.Nack(tag, false, true)
		a.m.requeued.Inc()
	})
}

// origin reads the writer id and sequence outputs.amqp puts in its headers.
func origin(d amqp.Delivery) core.Origin {
	w, ok := d.Headers[amqpconn.HeaderWriter].(string)
	if !ok || w == "" {
		return core.Origin{}
	}
	var seq uint64
	switch v := d.Headers[amqpconn.HeaderSeq].(type) {
	case int64:
		seq = uint64(v)
	case int32:
		seq = uint64(v)
	case uint64:
		seq = v
	default:
		return core.Origin{}
	}
	return core.Origin{Writer: w, Seq: seq}
}

// Kinds of bad messages, the label (reason) of bad_messages_total.
const (
	badJSON    = "not_json"
	badType    = "wrong_type"
	badValue   = "bad_value"
	badEvent   = "unknown_event"
	badBinary  = "bad_binary"
	badUnknown = "unknown_format"
)

// decode fills b from the message body and returns the number of markers.
func (a *AMQP) decode(b *core.Batch, ctype string, body []byte) (int, error) {
	binary := false
	switch a.Format {
	case "flowline":
		binary = true
	case "json":
	default:
		binary = ctype == wire.ContentType || (ctype == "" || ctype == "application/octet-stream") && bytes.HasPrefix(body, []byte("FLW"))
	}
	if binary {
		if _, err := wire.DecodeRecords(b, body); err != nil {
			return 0, kindError{badBinary, err}
		}
		return 0, nil
	}
	markers := 0
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r := b.AppendRecord()
		ev, err := a.dec.Decode(line, r)
		if err != nil {
			b.Records = b.Records[:0]
			switch {
			case errors.Is(err, pmacct.ErrWrongType):
				return 0, kindError{badType, err}
			case errors.Is(err, pmacct.ErrBadValue):
				return 0, kindError{badValue, err}
			case errors.Is(err, pmacct.ErrUnknownEvent):
				return 0, kindError{badEvent, err}
			}
			return 0, kindError{badJSON, err}
		}
		if ev == pmacct.EventMarker {
			b.Records = b.Records[:len(b.Records)-1]
			markers++
		}
	}
	return markers, nil
}

type kindError struct {
	kind string
	err  error
}

func (e kindError) Error() string { return e.kind + ": " + e.err.Error() }
func (e kindError) Unwrap() error { return e.err }

// reject counts a bad message, logs its kind at most every 10 seconds and
// rejects it without requeue (to the dead-letter exchange, if any).
func (a *AMQP) reject(d amqp.Delivery, err error) {
	kind := badUnknown
	var ke kindError
	if errors.As(err, &ke) {
		kind = ke.kind
	}
	a.m.bad.WithLabelValues(kind).Inc()
	a.badMu.Lock()
	l := a.bad[kind]
	if l == nil {
		l = ratelog.New(a.log, 10*time.Second)
		a.bad[kind] = l
	}
	a.badMu.Unlock()
	where := "dropped by the broker (no dead_letter_exchange)"
	if a.DeadLetterExchange != "" {
		where = "dead-lettered to " + a.DeadLetterExchange
	}
	l.Log(slog.LevelWarn, "bad message rejected", "kind", kind, "where", where, "content_type", d.ContentType,
		"message_id", d.MessageId, "err", strings.TrimPrefix(err.Error(), kind+": "))
	d.Nack(false, false)
}
