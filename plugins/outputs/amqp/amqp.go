// Package amqp is outputs.amqp: pmacct's amqp plugin. It publishes records
// to a RabbitMQ exchange as pmacct's JSON (one object a message, or
// newline-separated objects up to multi_values bytes) or as Flowline's
// compact binary batch (core/wire), with publisher confirms.
//
// Life cycle: Init validates the config, loads the writer id and opens the
// spool; Connect dials the broker (a broker that is down is not an error:
// the output spools meanwhile); Write publishes the batch and returns once
// the broker confirmed every message of it. When the broker is away (or
// something waits in the spool), Write puts the messages into the spool
// (bounded memory, then disk) and returns; a delivering goroutine publishes
// the spool in order when the broker is back. Close waits for the spool to
// drain (bounded by the shutdown deadline) and writes what is left to disk
// for the next start.
//
// Every message carries the writer id and its sequence number (headers
// flowline_writer and flowline_seq, and message id "writer/seq"): the
// sequence grows in publishing order, so a consumer that keeps the highest
// sequence it stored per writer recognises a redelivered message. A message
// the broker nacks or returns (mandatory: no queue is bound) did not reach a
// queue; it is published again with a new, higher sequence number.
package amqp

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
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
	"github.com/flowline/flowline/plugins/common/spool"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Outputs, "amqp", sample, func() any { return New() })
}

// Interface guards.
var (
	_ core.MemoryHolder = (*AMQP)(nil)
	_ core.Output       = (*AMQP)(nil)
	_ core.Initializer  = (*AMQP)(nil)
	_ core.Validator    = (*AMQP)(nil)
)

// ContentTypeJSON is the content type of JSON messages (as pmacct sets it).
const ContentTypeJSON = "application/json"

// AMQP is the outputs.amqp plugin and its configuration.
type AMQP struct {
	amqpconn.Config

	// Exchange is pmacct's amqp_exchange (default "pmacct").
	Exchange string `toml:"exchange"`
	// ExchangeType is direct, fanout or topic (default direct).
	ExchangeType string `toml:"exchange_type"`
	// ExchangeDurable declares the exchange durable; unset, it follows
	// persistent (as pmacct's amqp_persistent_msg does).
	ExchangeDurable *bool `toml:"exchange_durable"`
	// RoutingKey is pmacct's amqp_routing_key (default "acct"), with
	// variables: $peer_src_ip and $<primitive> (e.g. $dst_port, $proto).
	RoutingKey string `toml:"routing_key"`
	// Persistent sets delivery mode 2 (pmacct's amqp_persistent_msg).
	Persistent bool `toml:"persistent"`
	// Headers are added to every message.
	Headers map[string]string `toml:"headers"`
	// Format is "json" (pmacct) or "flowline" (core/wire binary batches).
	Format string `toml:"format"`
	// MultiValues packs newline-separated JSON objects into messages of up
	// to this many bytes (pmacct's amqp_multi_values); 0: one a message.
	MultiValues core.Size `toml:"multi_values"`
	// MaxRecords bounds the records of one flowline message (default 10000).
	MaxRecords int `toml:"max_records"`
	// Markers publishes pmacct's purge_init and purge_close around each
	// batch (JSON only).
	Markers bool `toml:"markers"`
	// TimestampsUTC prints stamps in UTC instead of local time.
	TimestampsUTC bool `toml:"timestamps_utc"`
	// Mandatory makes the broker return a message no queue takes, so that
	// it is published again instead of lost (default true).
	Mandatory *bool `toml:"mandatory"`
	// WriterID names this publisher in every message; default: the host
	// name and a random id kept in the data directory.
	WriterID string `toml:"writer_id"`
	// ConfirmTimeout bounds the wait for the broker's confirms; past it the
	// connection is taken as broken and the messages go to the spool.
	ConfirmTimeout core.Duration `toml:"confirm_timeout"`
	// BufferMessages bounds the messages held in memory while the broker is
	// away; SpoolSize bounds the spool files beyond it; SpoolDir is where
	// they go (default <data_dir>/amqp-spool/<name>).
	BufferMessages int       `toml:"buffer_messages"`
	SpoolSize      core.Size `toml:"spool_size"`
	SpoolDir       string    `toml:"spool_dir"`

	log      *slog.Logger
	m        metrics
	binary   bool
	key      keyTemplate
	enc      pmacct.Encoder
	headers  amqp.Table
	seq      atomic.Uint64
	spool    *spool.Spool[[]byte]
	writerPM string // pmacct's writer_id for markers: "<writer>/<pid>"

	mu      sync.Mutex // one publisher at a time: Write or the spool drainer
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
	url     string

	scratch []byte
	bad     *ratelog.Limiter
	stop    chan struct{}
	done    chan struct{}
	started bool
}

type metrics struct {
	published   prometheus.Counter
	republished prometheus.Counter
	spooled     prometheus.Counter
	dropped     prometheus.Counter
	connects    prometheus.Counter
	waiting     prometheus.GaugeFunc
}

// New returns the plugin with pmacct's defaults.
func New() *AMQP {
	return &AMQP{Exchange: "pmacct", ExchangeType: "direct", RoutingKey: "acct", Format: "json",
		MaxRecords: 10000, ConfirmTimeout: core.Duration(30 * time.Second),
		BufferMessages: 10000, SpoolSize: 1 << 30}
}

// Validate checks the keys that need no environment.
func (o *AMQP) Validate() error {
	if err := o.Config.Check(); err != nil {
		return err
	}
	switch o.ExchangeType {
	case "direct", "fanout", "topic":
	default:
		return fmt.Errorf("exchange_type = %q: want \"direct\", \"fanout\" or \"topic\"", o.ExchangeType)
	}
	switch strings.ToLower(o.Format) {
	case "json":
		o.binary = false
	case "flowline":
		o.binary = true
	default:
		return fmt.Errorf("format = %q: want \"json\" or \"flowline\"", o.Format)
	}
	if o.Markers && o.binary {
		return errors.New("markers are pmacct's JSON messages: use them with format = \"json\"")
	}
	if o.MultiValues < 0 {
		return errors.New("multi_values must not be negative")
	}
	if o.MaxRecords <= 0 || o.MaxRecords > wire.MaxCount {
		return fmt.Errorf("max_records = %d: want 1 to %d", o.MaxRecords, wire.MaxCount)
	}
	if o.ConfirmTimeout <= 0 {
		return errors.New("confirm_timeout must be positive")
	}
	if o.BufferMessages <= 0 {
		return errors.New("buffer_messages must be positive")
	}
	if o.SpoolSize < 0 {
		return errors.New("spool_size must not be negative")
	}
	k, err := parseKey(o.RoutingKey)
	if err != nil {
		return fmt.Errorf("routing_key %q: %w", o.RoutingKey, err)
	}
	o.key = k
	return nil
}

// Init checks the configuration, settles the writer id and opens the spool.
func (o *AMQP) Init(env *core.Env) error {
	if err := o.Validate(); err != nil {
		return err
	}
	o.log = env.Logger
	o.bad = ratelog.New(o.log, 10*time.Second)
	o.enc.Loc = time.Local
	if o.TimestampsUTC {
		o.enc.Loc = time.UTC
	}
	if o.WriterID == "" {
		id, err := writerID(env)
		if err != nil {
			return err
		}
		o.WriterID = id
	}
	o.writerPM = env.Name + "/" + strconv.Itoa(os.Getpid())
	o.headers = amqp.Table{}
	for k, v := range o.Headers {
		o.headers[k] = v
	}
	// Sequence numbers start at the clock, so that a new process numbers
	// above everything an earlier one published (it cannot have published
	// a message a nanosecond).
	o.seq.Store(uint64(time.Now().UnixNano()))
	dir := o.SpoolDir
	if dir == "" && env.DataDir != "" {
		dir = filepath.Join(env.DataDir, "amqp-spool", safeName(env.Name))
	}
	o.spool = spool.New(spool.Config[[]byte]{Dir: dir, Magic: "FLAMQP01", Ext: ".msgs",
		MaxItems: o.BufferMessages, MaxBytes: int64(o.SpoolSize), Codec: spool.Bytes{}})
	if err := o.spool.Open(0); err != nil {
		return err
	}
	c := func(name, help string) prometheus.Counter {
		x := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "amqp", Name: name, Help: help})
		env.Metrics.MustRegister(x)
		return x
	}
	o.m = metrics{
		published:   c("messages_published_total", "Messages the broker confirmed."),
		republished: c("messages_republished_total", "Messages published again (nacked, returned, or unconfirmed when the connection broke)."),
		spooled:     c("messages_spooled_total", "Messages put into the buffer and spool while the broker was away."),
		dropped:     c("messages_dropped_total", "Messages that fit neither the memory buffer nor the spool."),
		connects:    c("connects_total", "Connections made to the broker."),
	}
	o.m.waiting = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "flowline", Subsystem: "amqp", Name: "messages_waiting",
		Help: "Messages waiting in memory for the broker."}, func() float64 { n, _, _ := o.spool.Sizes(); return float64(n) })
	env.Metrics.MustRegister(o.m.waiting)
	return nil
}

// writerID returns "<host>/<random id>", the random part created once and
// kept in the data directory, so that two collectors on one host differ and
// a restart keeps its id.
func writerID(env *core.Env) (string, error) {
	host, _ := os.Hostname()
	if host == "" {
		host = "flowline"
	}
	if env.DataDir == "" {
		var b [8]byte
		rand.Read(b[:])
		return host + "/" + hex.EncodeToString(b[:]), nil
	}
	path := filepath.Join(env.DataDir, "amqp-writer-"+safeName(env.Name)+".id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	var b [8]byte
	rand.Read(b[:])
	id := host + "/" + hex.EncodeToString(b[:])
	if err := os.MkdirAll(env.DataDir, 0o755); err != nil {
		return "", fmt.Errorf("writer id: %w", err)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("writer id: %w", err)
	}
	return id, nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// Connect dials the broker and starts the spool's delivering goroutine. A
// broker that does not answer is no error: messages wait in the spool.
func (o *AMQP) Connect(ctx context.Context) error {
	if o.spool == nil {
		return errors.New("Connect before Init")
	}
	if !o.started {
		o.started = true
		o.stop = make(chan struct{})
		o.done = make(chan struct{})
		go o.drain()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.connect(ctx); err != nil {
		if core.IsPermanent(err) {
			return err
		}
		o.log.Warn("broker not reachable; spooling until it is", "err", err)
	}
	return nil
}

// connect opens a connection and a confirming channel and declares the
// exchange. Called with o.mu held.
func (o *AMQP) connect(ctx context.Context) error {
	if o.ch != nil && !o.ch.IsClosed() {
		return nil
	}
	o.closeConn()
	conn, url, err := o.Dial(ctx, "flowline outputs.amqp "+o.WriterID)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return fmt.Errorf("channel: %w", err)
	}
	durable := o.Persistent
	if o.ExchangeDurable != nil {
		durable = *o.ExchangeDurable
	}
	ch, err = amqpconn.DeclareExchange(conn, ch, o.Exchange, o.ExchangeType, durable)
	if err != nil {
		conn.Close()
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
			return core.Permanent(fmt.Errorf("exchange %q exists with other settings (exchange_type %q, durable %v asked): %w", o.Exchange, o.ExchangeType, durable, err))
		}
		return fmt.Errorf("exchange %q: %w", o.Exchange, err)
	}
	if err := ch.Confirm(false); err != nil {
		conn.Close()
		return fmt.Errorf("confirm mode: %w", err)
	}
	o.returns = ch.NotifyReturn(make(chan amqp.Return, 4096))
	o.conn, o.ch, o.url = conn, ch, url
	o.m.connects.Inc()
	o.log.Info("connected to broker", "url", url)
	return nil
}

func (o *AMQP) closeConn() {
	if o.conn != nil {
		o.conn.Close()
	}
	o.conn, o.ch, o.returns = nil, nil, nil
}

// Write publishes the batch and returns when the broker confirmed every
// message; when the broker is away it spools them and returns.
func (o *AMQP) Write(ctx context.Context, b *core.Batch) error {
	if o.spool == nil {
		return errors.New("Write before Init")
	}
	msgs := o.encode(b)
	if len(msgs) == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.spool.Empty() {
		rest, err := o.publish(ctx, msgs)
		if err == nil {
			return nil
		}
		o.bad.Log(slog.LevelWarn, "publish failed; spooling until the broker is back", "messages", len(rest), "err", err)
		msgs = rest
	}
	o.m.spooled.Add(float64(len(msgs)))
	if dropped, err := o.spool.Push(msgs, 0); dropped > 0 {
		o.m.dropped.Add(float64(dropped))
		o.bad.Log(slog.LevelError, "buffer and spool full: messages dropped", "messages", dropped, "err", err)
	}
	return nil
}

// drain publishes what waits in the spool, oldest first, until Close.
func (o *AMQP) drain() {
	defer close(o.done)
	backoff := 100 * time.Millisecond
	for {
		if o.spool.Empty() {
			select {
			case <-o.stop:
				return
			case <-o.spool.Notify():
			case <-time.After(time.Second):
			}
			continue
		}
		group, err := o.spool.Peek(1000)
		if err != nil {
			if len(group) > 0 {
				o.m.dropped.Add(float64(group[0].N))
				o.log.Error("unreadable spool file set aside; its messages are lost", "messages", group[0].N, "err", err)
				o.spool.SetAside(group[0])
			}
			continue
		}
		var inflight [][]byte
		for _, c := range group {
			inflight = append(inflight, c.Items...)
		}
		// Publish the group until every message of it is confirmed; only
		// then does it leave the spool (so that a stop keeps it).
		for len(inflight) > 0 {
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-o.stop:
				case <-ctx.Done():
				}
				cancel()
			}()
			o.mu.Lock()
			rest, err := o.publish(ctx, inflight)
			o.mu.Unlock()
			cancel()
			inflight = rest
			if err == nil {
				break
			}
			o.bad.Log(slog.LevelWarn, "broker away; the spool waits", "messages", len(rest), "err", err)
			select {
			case <-o.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		o.spool.Commit(group)
		backoff = 100 * time.Millisecond
	}
}

// Close stops the drainer after a last try and writes what is left in
// memory to the spool files for the next start.
func (o *AMQP) Close(ctx context.Context) error {
	if o.spool == nil {
		return nil
	}
	if o.started {
		// Let the drainer deliver while the deadline allows (5 s without
		// one), keeping 3 s of it to stop and spill.
		dl, ok := ctx.Deadline()
		if !ok {
			dl = time.Now().Add(8 * time.Second)
		}
		for !o.spool.Empty() && ctx.Err() == nil && time.Until(dl) > 3*time.Second {
			time.Sleep(50 * time.Millisecond)
		}
		close(o.stop)
		<-o.done
		o.started = false
	}
	lost, err := o.spool.Spill()
	if lost > 0 {
		o.m.dropped.Add(float64(lost))
		o.log.Error("messages lost at close: could not write them to the spool", "messages", lost, "err", err)
	}
	if _, bytes, chunks := o.spool.Sizes(); chunks > 0 {
		o.log.Warn("broker away at close: messages wait in the spool for the next start", "chunks", chunks, "bytes", bytes, "dir", o.spool.Dir())
	}
	o.mu.Lock()
	o.closeConn()
	o.mu.Unlock()
	return err
}

// A message as the spool keeps it: seq (8 bytes), routing key length (2)
// and key, content type length (1) and type, then the body.
func appendMessage(dst []byte, seq uint64, key []byte, ctype string, body []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, seq)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(key)))
	dst = append(dst, key...)
	dst = append(dst, byte(len(ctype)))
	dst = append(dst, ctype...)
	return append(dst, body...)
}

type message struct {
	seq   uint64
	key   string
	ctype string
	body  []byte
}

func parseMessage(b []byte) (message, error) {
	if len(b) < 11 {
		return message{}, errors.New("spooled message truncated")
	}
	m := message{seq: binary.BigEndian.Uint64(b)}
	kl := int(binary.BigEndian.Uint16(b[8:]))
	b = b[10:]
	if len(b) < kl+1 {
		return message{}, errors.New("spooled message truncated")
	}
	m.key = string(b[:kl])
	b = b[kl:]
	cl := int(b[0])
	b = b[1:]
	if len(b) < cl {
		return message{}, errors.New("spooled message truncated")
	}
	m.ctype = string(b[:cl])
	m.body = b[cl:]
	return m, nil
}

func setSeq(b []byte, seq uint64) { binary.BigEndian.PutUint64(b, seq) }

// publish sends msgs in order and waits for every confirm. A message gets
// its sequence number when it is first published, so that sequence numbers
// follow the publishing order; a message published again after a broken
// connection keeps its number (it may have reached the queue, and then the
// consumer skips the copy). A nacked or returned message did not reach a
// queue: its number is cleared and it is published again after the others,
// with a new one. On a broken connection or a confirm timeout publish
// returns the messages not confirmed, in the order to publish them, with
// the error. Called with o.mu held.
func (o *AMQP) publish(ctx context.Context, msgs [][]byte) ([][]byte, error) {
	mandatory := o.Mandatory == nil || *o.Mandatory
	mode := amqp.Transient
	if o.Persistent {
		mode = amqp.Persistent
	}
	pending := msgs
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			o.m.republished.Add(float64(len(pending)))
			if attempt > 3 {
				select {
				case <-ctx.Done():
					return pending, ctx.Err()
				case <-time.After(min(time.Duration(attempt)*100*time.Millisecond, 2*time.Second)):
				}
			}
		}
		if err := o.connect(ctx); err != nil {
			return pending, err
		}
		ch := o.ch
		dcs := make([]*amqp.DeferredConfirmation, 0, len(pending))
		ids := make(map[string]int, len(pending))
		var pubErr error
		for i, raw := range pending {
			m, err := parseMessage(raw)
			if err != nil {
				// Cannot happen for messages this process encoded; a
				// damaged spool file is caught by its checksum.
				o.m.dropped.Inc()
				o.bad.Log(slog.LevelError, "damaged message dropped", "err", err)
				dcs = append(dcs, nil)
				continue
			}
			if m.seq == 0 {
				m.seq = o.seq.Add(1)
				setSeq(raw, m.seq)
			}
			id := o.WriterID + "/" + strconv.FormatUint(m.seq, 10)
			ids[id] = i
			h := make(amqp.Table, len(o.headers)+2)
			for k, v := range o.headers {
				h[k] = v
			}
			h[amqpconn.HeaderWriter] = o.WriterID
			h[amqpconn.HeaderSeq] = int64(m.seq)
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, o.Exchange, m.key, mandatory, false, amqp.Publishing{
				Headers: h, ContentType: m.ctype, DeliveryMode: mode, MessageId: id,
				Timestamp: time.Now(), AppId: "flowline", Body: m.body,
			})
			if err != nil {
				pubErr = err
				break
			}
			dcs = append(dcs, dc)
		}
		// Wait for the confirms of what went out, in order.
		timer := time.NewTimer(time.Duration(o.ConfirmTimeout))
		var again [][]byte
		nacked := map[int]bool{}
		broken := -1
		for i, dc := range dcs {
			if dc == nil {
				continue
			}
			select {
			case <-dc.Done():
				if !dc.Acked() {
					again = append(again, pending[i])
					nacked[i] = true
				}
			case <-timer.C:
				broken = i
			case <-ctx.Done():
				broken = i
			}
			if broken >= 0 {
				break
			}
		}
		timer.Stop()
		if broken < 0 && pubErr != nil {
			broken = len(dcs)
		}
		// A returned message comes before its ack: the returns of the
		// messages confirmed so far are all in the channel.
		limit := len(dcs)
		if broken >= 0 {
			limit = broken
		}
	returned:
		for {
			select {
			case r, ok := <-o.returns:
				if !ok {
					break returned
				}
				if i, ok := ids[r.MessageId]; ok && i < limit && !nacked[i] {
					again = append(again, pending[i])
					o.bad.Log(slog.LevelWarn, "broker returned messages: no queue is bound to the exchange for the routing key; publishing again",
						"exchange", o.Exchange, "routing_key", r.RoutingKey, "reply", r.ReplyText)
				}
			default:
				break returned
			}
		}
		if broken >= 0 {
			// Unknown fate from broken on: keep those, with their numbers,
			// in order, for the next connection; the nacked and returned
			// ones after them, to be numbered anew.
			o.closeConn()
			for _, r := range again {
				setSeq(r, 0)
			}
			rest := append(append([][]byte{}, pending[broken:]...), again...)
			o.m.published.Add(float64(broken - len(again)))
			err := pubErr
			if err == nil {
				err = ctx.Err()
			}
			if err == nil {
				err = fmt.Errorf("no confirm within %s", time.Duration(o.ConfirmTimeout))
			}
			return rest, err
		}
		o.m.published.Add(float64(len(dcs) - len(again)))
		for _, r := range again {
			setSeq(r, 0)
		}
		pending = again
	}
	return nil, nil
}

// encode turns the batch into messages (routing key, content type, body),
// each numbered with the next sequence number.
func (o *AMQP) encode(b *core.Batch) [][]byte {
	var out [][]byte
	add := func(key []byte, ctype string, body []byte) {
		// The sequence number is given at the first publish (0 until then).
		out = append(out, appendMessage(make([]byte, 0, 11+len(key)+len(ctype)+len(body)), 0, key, ctype, body))
	}
	groups := o.group(b.Records)
	if o.Markers {
		add([]byte(groups.firstKey()), ContentTypeJSON, o.marker("purge_init", 0, 0))
	}
	n := 0
	for _, g := range groups.list {
		if o.binary {
			for i := 0; i < len(g.recs); i += o.MaxRecords {
				j := min(i+o.MaxRecords, len(g.recs))
				o.scratch = wire.AppendRecords(o.scratch[:0], 0, g.recs[i:j])
				add(g.key, wire.ContentType, o.scratch)
				n += j - i
			}
			continue
		}
		body := o.scratch[:0]
		for i := range g.recs {
			start := len(body)
			body = o.enc.AppendJSON(body, &g.recs[i])
			n++
			if o.MultiValues == 0 {
				add(g.key, ContentTypeJSON, body[:len(body)-1]) // one object, no newline, as pmacct
				body = body[:0]
				continue
			}
			if len(body) >= int(o.MultiValues) && start > 0 {
				// The last object does not fit: send the ones before it.
				add(g.key, ContentTypeJSON, body[:start])
				body = append(body[:0], body[start:]...)
			}
		}
		if len(body) > 0 {
			add(g.key, ContentTypeJSON, body)
		}
		o.scratch = body[:0]
	}
	if o.Markers {
		add([]byte(groups.firstKey()), ContentTypeJSON, o.marker("purge_close", n, len(b.Records)))
	}
	return out
}

// marker is pmacct's purge_init / purge_close object.
func (o *AMQP) marker(event string, purged, total int) []byte {
	b := []byte(`{"event_type": "` + event + `", "writer_id": "` + o.writerPM + `"`)
	if event == "purge_close" {
		b = append(b, `, "purged_entries": `...)
		b = strconv.AppendInt(b, int64(purged), 10)
		b = append(b, `, "total_entries": `...)
		b = strconv.AppendInt(b, int64(total), 10)
		b = append(b, `, "duration": 0`...)
	}
	return append(b, '}')
}

// keyGroups holds records by routing key, in order of first appearance.
type keyGroups struct {
	list []keyGroup
}

type keyGroup struct {
	key  []byte
	recs []core.Record
}

func (g keyGroups) firstKey() string {
	if len(g.list) == 0 {
		return ""
	}
	return string(g.list[0].key)
}

// group splits records by routing key; a static key is one group that
// shares the batch's records.
func (o *AMQP) group(recs []core.Record) keyGroups {
	// Options records are exporter metadata, not flows.
	flows := recs
	for i := range recs {
		if recs[i].Flags&core.FlagOptions != 0 {
			flows = make([]core.Record, 0, len(recs))
			for j := range recs {
				if recs[j].Flags&core.FlagOptions == 0 {
					flows = append(flows, recs[j])
				}
			}
			break
		}
	}
	if o.key.static() {
		return keyGroups{list: []keyGroup{{key: []byte(o.key.literal), recs: flows}}}
	}
	var g keyGroups
	index := map[string]int{}
	var kb []byte
	for i := range flows {
		kb = o.key.appendKey(kb[:0], &o.enc, &flows[i])
		k, ok := index[string(kb)]
		if !ok {
			k = len(g.list)
			index[string(kb)] = k
			g.list = append(g.list, keyGroup{key: append([]byte(nil), kb...)})
		}
		g.list[k].recs = append(g.list[k].recs, flows[i])
	}
	return g
}

// HeldBytes is the memory of what waits in the memory buffer (the engine's
// budget counts it).
func (o *AMQP) HeldBytes() int64 {
	if o.spool == nil {
		return 0
	}
	return o.spool.MemBytes()
}
