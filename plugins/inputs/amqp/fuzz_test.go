package amqp

import (
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/wire"
)

// FuzzDecodeMessage: any message body, with either content type, decodes to
// records or to an error of a known kind, never a panic, and an error
// leaves no record behind.
func FuzzDecodeMessage(f *testing.F) {
	b := core.NewBatch()
	r := b.AppendRecord()
	r.Packets, r.Bytes, r.Present = 3, 300, core.FieldPackets|core.FieldBytes
	f.Add(wire.ContentType, wire.AppendRecords(nil, 1, b.Records))
	f.Add("application/json", []byte(`{"event_type": "purge", "ip_src": "10.0.0.1", "packets": 1, "bytes": 2}`+"\n"+`{"event_type": "purge_close", "writer_id": "x/1"}`))
	f.Add("", []byte("FLW\x01\x01\x00\x01"))
	a := New()
	a.dec.Loc = time.UTC
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		b := core.NewBatch()
		defer b.Release()
		_, err := a.decode(b, ctype, body)
		if err != nil {
			if _, ok := err.(kindError); !ok {
				t.Fatalf("error of no kind: %v", err)
			}
			if len(b.Records) != 0 {
				t.Fatalf("%d records left after an error", len(b.Records))
			}
		}
	})
}
