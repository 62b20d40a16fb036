package netflow

import (
	"testing"

	"github.com/flowline/flowline/core"
)

func benchDecode(b *testing.B, data []byte, warm []byte, flowsPer int) {
	d := NewDecoder(DecoderConfig{})
	batch := &core.Batch{Records: make([]core.Record, 0, 64)}
	if warm != nil {
		if _, err := d.Decode(pkt(exporterA, warm), batch); err != nil {
			b.Fatal(err)
		}
	}
	p := pkt(exporterA, data)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	flows := 0
	for b.Loop() {
		batch.Records = batch.Records[:0]
		st, err := d.Decode(p, batch)
		if err != nil || st.Records != flowsPer {
			b.Fatalf("records %d err %v", st.Records, err)
		}
		flows += st.Records
	}
	b.ReportMetric(float64(flows)/b.Elapsed().Seconds(), "flows/s")
}

// BenchmarkDecodeV9 decodes a v9 datagram of 30 5-tuple flows.
func BenchmarkDecodeV9(b *testing.B) {
	var recs [][]byte
	for i := 0; i < 30; i++ {
		recs = append(recs, fiveTupleRec(i))
	}
	tpl := v9Packet(1000000, testSecs, 1, set(0, v9Tpl(300, fiveTuple...)))
	benchDecode(b, v9Packet(1000000, testSecs, 1, set(300, recs...)), tpl, 30)
}

// BenchmarkDecodeIPFIX decodes an IPFIX message of 30 5-tuple flows.
func BenchmarkDecodeIPFIX(b *testing.B) {
	var recs [][]byte
	for i := 0; i < 30; i++ {
		recs = append(recs, ipfixFiveTupleRec(i))
	}
	tpl := ipfixPacket(testSecs, 1, set(2, ipfixTpl(300, ipfixFiveTuple...)))
	benchDecode(b, ipfixPacket(testSecs, 1, set(300, recs...)), tpl, 30)
}

// BenchmarkDecodeV5 decodes a v5 datagram of 30 flows.
func BenchmarkDecodeV5(b *testing.B) {
	benchDecode(b, v5Packet(30, 30, 0), nil, 30)
}

// BenchmarkDecodeV9WithTemplate decodes datagrams that repeat the template
// before 30 flows (the refresh path must not allocate either).
func BenchmarkDecodeV9WithTemplate(b *testing.B) {
	var recs [][]byte
	for i := 0; i < 30; i++ {
		recs = append(recs, fiveTupleRec(i))
	}
	benchDecode(b, v9Packet(1000000, testSecs, 1, set(0, v9Tpl(300, fiveTuple...)), set(300, recs...)), nil, 30)
}
