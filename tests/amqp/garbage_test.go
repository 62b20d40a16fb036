package amqp

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/wire"
	"github.com/flowline/flowline/internal/testamqp"
	"github.com/flowline/flowline/internal/testbin"
	"github.com/flowline/flowline/plugins/common/amqpconn"
)

// Garbage on the queue between good messages: the good ones are all
// stored, the bad ones counted by reason and logged, and the consumer goes on.
func TestGarbageMessages(t *testing.T) {
	br := testamqp.Find(t)
	n := newNames()
	cport := testbin.FreeTCPPort(t)
	central := startCentral(t, t.TempDir(), centralConfig(br, n, cport, ""), cport)
	_, ch := br.Dial(t)
	garbage := []struct{ ctype, body string }{
		{"application/json", "\x00\x01 binary noise"},
		{"application/json", `{"event_type": "purge", "packets": "ten"}`},
		{"application/json", `{"event_type": "purge", "ip_src": "300.1.1.1", "packets": 1}`},
		{"application/json", `{"event_type": "purge", "packets": 1`},
		{"application/vnd.flowline.batch", "FLW\x01\x01\x00\xff\xff"},
		{"text/plain", "hello"},
	}
	var wantPackets, wantBytes uint64
	for i := 0; i < 200; i++ {
		p, b := uint64(i+1), uint64(100*(i+1))
		good := fmt.Sprintf(`{"event_type": "purge", "ip_src": "10.0.%d.%d", "ip_dst": "10.1.0.1", "port_src": %d, "port_dst": 443, "tcp_flags": "0", "ip_proto": "tcp", "stamp_inserted": "2026-01-02 03:00:00", "stamp_updated": "2026-01-02 03:00:02", "packets": %d, "bytes": %d}`,
			i/200, i%200, 1000+i, p, b)
		wantPackets, wantBytes = wantPackets+p, wantBytes+b
		if err := ch.Publish(n.exchange, "acct", false, false, amqp091.Publishing{ContentType: "application/json", Body: []byte(good)}); err != nil {
			t.Fatal(err)
		}
		g := garbage[i%len(garbage)]
		if err := ch.Publish(n.exchange, "acct", false, false, amqp091.Publishing{ContentType: g.ctype, Body: []byte(g.body)}); err != nil {
			t.Fatal(err)
		}
	}
	waitConsumed(t, br, n, central, time.Minute)
	bad := testbin.Metric(t, central.metrics, "flowline_amqp_bad_messages_total")
	central.Stop()
	got := totals(t, central)
	if got.packets != wantPackets || got.bytes != wantBytes || got.rows != 200 {
		t.Fatalf("stored %d rows, %d packets, %d bytes; want 200, %d, %d\n%s", got.rows, got.packets, got.bytes, wantPackets, wantBytes, central.Log())
	}
	if bad != 200 {
		t.Errorf("bad_messages_total = %v, want 200", bad)
	}
	for _, reason := range []string{"not_json", "wrong_type", "bad_value", "bad_binary"} {
		if !contains(central.Log(), "kind="+reason) {
			t.Errorf("no log line for %s:\n%s", reason, central.Log())
		}
	}
}

// A message delivered twice (the same writer and sequence, as after an
// edge's reconnect or a consumer's crash) and an older one are stored once:
// the central's store skips them and counts them.
func TestDuplicateStoredOnce(t *testing.T) {
	br := testamqp.Find(t)
	n := newNames()
	cport := testbin.FreeTCPPort(t)
	central := startCentral(t, t.TempDir(), centralConfig(br, n, cport, ""), cport)
	_, ch := br.Dial(t)
	b := core.NewBatch()
	r := b.AppendRecord()
	r.SrcAddr, r.DstAddr = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	r.SrcPort, r.DstPort, r.Proto, r.TCPFlags = 1000, 443, 6, 2
	r.Packets, r.Bytes = 10, 1000
	r.StampInserted, r.StampUpdated = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC).UnixNano(), time.Date(2026, 1, 2, 3, 0, 5, 0, time.UTC).UnixNano()
	r.Present = core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldProto |
		core.FieldTCPFlags | core.FieldPackets | core.FieldBytes | core.FieldStamps
	body := wire.AppendRecords(nil, 0, b.Records)
	for _, seq := range []int64{5, 5, 4, 6} {
		if err := ch.Publish(n.exchange, "acct", false, false, amqp091.Publishing{ContentType: wire.ContentType, Body: body,
			Headers: amqp091.Table{amqpconn.HeaderWriter: "edge-x", amqpconn.HeaderSeq: seq}}); err != nil {
			t.Fatal(err)
		}
	}
	waitConsumed(t, br, n, central, time.Minute)
	dups := testbin.Metric(t, central.metrics, "flowline_duckdb_duplicate_batches_total")
	central.Stop()
	got := totals(t, central)
	if got.packets != 20 || got.bytes != 2000 {
		t.Fatalf("stored %d packets, %d bytes; want seq 5 and 6 once each (20, 2000)", got.packets, got.bytes)
	}
	if dups != 2 {
		t.Errorf("duplicate_batches_total = %v, want 2", dups)
	}
}
