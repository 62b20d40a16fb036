package amqp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/wire"
	"github.com/flowline/flowline/internal/testamqp"
	"github.com/flowline/flowline/plugins/common/amqpconn"
	"github.com/flowline/flowline/plugins/common/pmacct"
)

var ctx = context.Background()

// records returns n aggregated records with distinct ports.
func records(n int) *core.Batch {
	b := core.NewBatch()
	for i := 0; i < n; i++ {
		r := b.AppendRecord()
		r.Exporter = netip.MustParseAddr("192.0.2.1")
		r.SrcAddr = netip.MustParseAddr("10.0.0.1")
		r.DstAddr = netip.MustParseAddr("10.0.0.2")
		r.SrcPort, r.DstPort, r.Proto = uint16(1000+i), uint16(80+i%3), 6
		r.Packets, r.Bytes = uint64(i+1), uint64(100*(i+1))
		r.StampInserted, r.StampUpdated = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC).UnixNano(), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
		r.Present = core.FieldExporter | core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort |
			core.FieldProto | core.FieldPackets | core.FieldBytes | core.FieldStamps
	}
	return b
}

// queue declares a queue bound to a fresh exchange with key and returns
// the exchange and queue names.
func queue(t *testing.T, br testamqp.Broker, key string, durable bool) (exchange, q string, ch *amqp091.Channel) {
	_, ch = br.Dial(t)
	exchange, q = testamqp.Name("ex"), testamqp.Name("q")
	t.Cleanup(func() {
		_, ch := br.Dial(t)
		ch.ExchangeDelete(exchange, false, false)
	})
	if err := ch.ExchangeDeclare(exchange, "topic", durable, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, key, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	return exchange, q, ch
}

func newOutput(t *testing.T, br testamqp.Broker, o *AMQP) *AMQP {
	t.Helper()
	o.URL = amqpconn.URLs{br.URL}
	if err := o.Init(core.NewEnv("amqp-test", t.TempDir())); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close(ctx) })
	return o
}

func drain(t *testing.T, ch *amqp091.Channel, q string, want int) []amqp091.Delivery {
	t.Helper()
	var out []amqp091.Delivery
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		out = append(out, d)
	}
	if len(out) != want {
		t.Fatalf("got %d messages, want %d", len(out), want)
	}
	if d, ok, _ := ch.Get(q, true); ok {
		t.Fatalf("unexpected extra message %q", d.Body)
	}
	return out
}

// JSON with multi_values and markers: pmacct's objects, newline-separated,
// the same lines outputs.print writes, between purge_init and purge_close;
// every message carries the writer id and a growing sequence.
func TestJSONMultiValuesMarkers(t *testing.T) {
	br := testamqp.Find(t)
	ex, q, ch := queue(t, br, "acct", false)
	o := &AMQP{Exchange: ex, ExchangeType: "topic", RoutingKey: "acct", Format: "json",
		MultiValues: 1024, Markers: true, TimestampsUTC: true, MaxRecords: 10000,
		ConfirmTimeout: core.Duration(10 * time.Second), BufferMessages: 100, Headers: map[string]string{"site": "fra1"}}
	// Failover: the first URL does not answer, the second does.
	o.URL = amqpconn.URLs{"amqp://flowline:flowline@127.0.0.1:1/", br.URL}
	if err := o.Init(core.NewEnv("amqp-test", t.TempDir())); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close(ctx) })
	b := records(20)
	if err := o.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	enc := pmacct.Encoder{Loc: time.UTC}
	var want []byte
	for i := range b.Records {
		want = enc.AppendJSON(want, &b.Records[i])
	}
	lines := bytes.Count(want, []byte("\n"))
	// Objects are packed while the message stays below multi_values.
	msgs, cur := 0, 0
	for _, l := range bytes.SplitAfter(want, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		if cur > 0 && cur+len(l) >= 1024 {
			msgs, cur = msgs+1, 0
		}
		cur += len(l)
	}
	if cur > 0 {
		msgs++
	}
	ds := drain(t, ch, q, 2+msgs)
	var got []byte
	var lastSeq int64
	for i, d := range ds {
		if d.ContentType != "application/json" {
			t.Errorf("content type %q", d.ContentType)
		}
		if d.Headers["site"] != "fra1" {
			t.Errorf("headers %v", d.Headers)
		}
		if d.Headers[amqpconn.HeaderWriter] != o.WriterID {
			t.Errorf("writer header %v, want %s", d.Headers[amqpconn.HeaderWriter], o.WriterID)
		}
		seq := d.Headers[amqpconn.HeaderSeq].(int64)
		if seq <= lastSeq {
			t.Errorf("sequence %d after %d", seq, lastSeq)
		}
		lastSeq = seq
		switch i {
		case 0:
			if !strings.HasPrefix(string(d.Body), `{"event_type": "purge_init", "writer_id": "amqp-test/`) {
				t.Errorf("first message %s", d.Body)
			}
		case len(ds) - 1:
			if !strings.Contains(string(d.Body), `"event_type": "purge_close"`) || !strings.Contains(string(d.Body), `"purged_entries": 20, "total_entries": 20`) {
				t.Errorf("last message %s", d.Body)
			}
		default:
			if len(d.Body) > 1024+300 {
				t.Errorf("message of %d bytes with multi_values 1024", len(d.Body))
			}
			got = append(got, d.Body...)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("bodies differ from print's lines (%d lines):\ngot  %s\nwant %s", lines, got, want)
	}
}

// Without multi_values each message is one object without a newline, as
// pmacct publishes; the routing key takes variables from the record.
func TestJSONSingleDynamicKey(t *testing.T) {
	br := testamqp.Find(t)
	ex, q, ch := queue(t, br, "acct.#", false)
	o := newOutput(t, br, &AMQP{Exchange: ex, ExchangeType: "topic", RoutingKey: "acct.$peer_src_ip.$dst_port", Format: "json",
		MaxRecords: 10000, ConfirmTimeout: core.Duration(10 * time.Second), BufferMessages: 100})
	if err := o.Write(ctx, records(3)); err != nil {
		t.Fatal(err)
	}
	ds := drain(t, ch, q, 3)
	for i, d := range ds {
		if want := "acct.192.0.2.1." + []string{"80", "81", "82"}[i]; d.RoutingKey != want {
			t.Errorf("routing key %q, want %q", d.RoutingKey, want)
		}
		if bytes.HasSuffix(d.Body, []byte("\n")) || !bytes.HasPrefix(d.Body, []byte(`{"event_type": "purge"`)) {
			t.Errorf("body %q", d.Body)
		}
	}
}

// format = "flowline": core/wire batches that decode to the same records.
func TestFlowlineFormat(t *testing.T) {
	br := testamqp.Find(t)
	ex, q, ch := queue(t, br, "acct", true)
	o := newOutput(t, br, &AMQP{Exchange: ex, ExchangeType: "topic", RoutingKey: "acct", Format: "flowline",
		MaxRecords: 400, Persistent: true, ConfirmTimeout: core.Duration(10 * time.Second), BufferMessages: 100})
	b := records(1000)
	if err := o.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	ds := drain(t, ch, q, 3)
	got := core.NewBatch()
	for _, d := range ds {
		if d.ContentType != wire.ContentType || d.DeliveryMode != amqp091.Persistent {
			t.Errorf("content type %q, delivery mode %d", d.ContentType, d.DeliveryMode)
		}
		if _, err := wire.DecodeRecords(got, d.Body); err != nil {
			t.Fatal(err)
		}
	}
	if len(got.Records) != len(b.Records) {
		t.Fatalf("%d records, want %d", len(got.Records), len(b.Records))
	}
	for i := range b.Records {
		if !reflect.DeepEqual(got.Records[i], b.Records[i]) {
			t.Fatalf("record %d: %+v, want %+v", i, got.Records[i], b.Records[i])
		}
	}
}

// A message no queue takes is returned by the broker and published again
// (with a new sequence number) until a queue is bound; nothing is lost.
func TestReturnedRepublished(t *testing.T) {
	br := testamqp.Find(t)
	_, ch := br.Dial(t)
	ex, q := testamqp.Name("ex"), testamqp.Name("q")
	if err := ch.ExchangeDeclare(ex, "direct", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	o := newOutput(t, br, &AMQP{Exchange: ex, ExchangeType: "direct", RoutingKey: "acct", Format: "flowline",
		MaxRecords: 10000, ConfirmTimeout: core.Duration(10 * time.Second), BufferMessages: 100})
	go func() {
		time.Sleep(700 * time.Millisecond)
		ch.QueueBind(q, "acct", ex, false, nil)
	}()
	if err := o.Write(ctx, records(5)); err != nil {
		t.Fatal(err)
	}
	ds := drain(t, ch, q, 1)
	got := core.NewBatch()
	if _, err := wire.DecodeRecords(got, ds[0].Body); err != nil || len(got.Records) != 5 {
		t.Fatalf("records %d, err %v", len(got.Records), err)
	}
}

// Broker down: Write spools and returns; when the broker is back the spool
// goes out in order. A restart of the output in between keeps the spool.
func TestSpoolWhileBrokerAway(t *testing.T) {
	br := testamqp.Find(t)
	ex, q, ch := queue(t, br, "acct", false)
	dir := t.TempDir()
	mk := func(url string) *AMQP {
		o := &AMQP{Exchange: ex, ExchangeType: "topic", RoutingKey: "acct", Format: "flowline", MaxRecords: 10000,
			ConfirmTimeout: core.Duration(3 * time.Second), BufferMessages: 2, SpoolSize: 1 << 20, SpoolDir: dir, WriterID: "w1"}
		o.URL = amqpconn.URLs{url}
		o.ConnectTimeout = core.Duration(time.Second)
		if err := o.Init(core.NewEnv("spool-test", t.TempDir())); err != nil {
			t.Fatal(err)
		}
		if err := o.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		return o
	}
	// A URL nobody answers stands for the broker being away.
	away := mk("amqp://flowline:flowline@127.0.0.1:1/")
	for i := 0; i < 5; i++ {
		b := records(i + 1)
		if err := away.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	away.Close(cctx)
	cancel()
	// The next start (the broker back) delivers the spool, oldest first.
	back := mk(br.URL)
	defer back.Close(ctx)
	ds := drain(t, ch, q, 5)
	var last int64
	for i, d := range ds {
		got := core.NewBatch()
		if _, err := wire.DecodeRecords(got, d.Body); err != nil || len(got.Records) != i+1 {
			t.Fatalf("message %d: %d records, err %v", i, len(got.Records), err)
		}
		if s := d.Headers[amqpconn.HeaderSeq].(int64); s <= last {
			t.Errorf("sequence %d after %d", s, last)
		} else {
			last = s
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		o   *AMQP
		err string
	}{
		{&AMQP{}, "url is required"},
		{func() *AMQP { o := New(); o.URL = amqpconn.URLs{"amqp://h/"}; o.ExchangeType = "headers"; return o }(), "exchange_type"},
		{func() *AMQP { o := New(); o.URL = amqpconn.URLs{"amqp://h/"}; o.Format = "avro"; return o }(), "format"},
		{func() *AMQP { o := New(); o.URL = amqpconn.URLs{"amqp://h/"}; o.RoutingKey = "acct.$nosuch"; return o }(), "unknown variable $nosuch"},
		{func() *AMQP {
			o := New()
			o.URL = amqpconn.URLs{"amqp://h/"}
			o.Format = "flowline"
			o.Markers = true
			return o
		}(), "markers"},
		{func() *AMQP { o := New(); o.URL = amqpconn.URLs{"http://h/"}; return o }(), "url"},
	} {
		err := c.o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("Validate() = %v, want an error about %q", err, c.err)
		}
	}
}

// An exchange that exists (here durable, declared by a consumer) is used as
// it is, whatever persistent says.
func TestExistingExchangeUsed(t *testing.T) {
	br := testamqp.Find(t)
	ex, q, ch := queue(t, br, "acct", true)
	o := newOutput(t, br, &AMQP{Exchange: ex, ExchangeType: "direct", RoutingKey: "acct", Format: "flowline",
		MaxRecords: 10000, ConfirmTimeout: core.Duration(10 * time.Second), BufferMessages: 100})
	if err := o.Write(ctx, records(2)); err != nil {
		t.Fatal(err)
	}
	drain(t, ch, q, 1)
}

// TLS: an amqps:// URL verified against tls_ca publishes; a CA that did not
// sign the broker's certificate does not connect (the batch is spooled).
func TestTLS(t *testing.T) {
	br := testamqp.Find(t)
	if br.TLSURL == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("the test broker has no TLS listener (openssl missing?)")
		}
		t.Skip("the test broker has no TLS listener")
	}
	ex, q, ch := queue(t, br, "acct", false)
	mk := func(ca string) *AMQP {
		o := &AMQP{Exchange: ex, ExchangeType: "topic", RoutingKey: "acct", Format: "flowline", MaxRecords: 10000,
			ConfirmTimeout: core.Duration(5 * time.Second), BufferMessages: 100}
		o.URL = amqpconn.URLs{br.TLSURL}
		o.TLSCA = ca
		o.ConnectTimeout = core.Duration(3 * time.Second)
		if err := o.Init(core.NewEnv("tls", t.TempDir())); err != nil {
			t.Fatal(err)
		}
		if err := o.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close(ctx) })
		return o
	}
	good := mk(br.CA)
	if err := good.Write(ctx, records(3)); err != nil {
		t.Fatal(err)
	}
	if !good.spool.Empty() {
		t.Fatal("spooled over a good TLS connection")
	}
	drain(t, ch, q, 1)
	// A CA of its own that signed nothing of the broker's.
	dir := t.TempDir()
	other := filepath.Join(dir, "other.pem")
	if err := os.WriteFile(other, selfSignedCA(t), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := mk(other)
	if err := bad.Write(ctx, records(3)); err != nil {
		t.Fatal(err)
	}
	if bad.spool.Empty() {
		t.Fatal("published although the broker's certificate is not signed by tls_ca")
	}
}

// selfSignedCA returns a PEM certificate of a fresh CA.
func selfSignedCA(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
