package netflow

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowline/flowline/core"
)

// addCorpusSeeds adds the corpus datagrams of the given version as seeds.
func addCorpusSeeds(f *testing.F, version uint16) {
	_ = filepath.WalkDir(corpusDir, func(path string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() || !strings.HasSuffix(path, ".pcap") || strings.Contains(path, "sflow") {
			return nil
		}
		pkts, err := readPcap(path)
		if err != nil {
			return nil
		}
		for _, p := range pkts {
			if len(p.payload) >= 2 && be16(p.payload) == version {
				f.Add(p.payload)
			}
		}
		return nil
	})
}

// fuzzDecode decodes garbage through a decoder, twice (so that templates it
// taught are used), then checks that a valid packet still decodes.
func fuzzDecode(t *testing.T, data []byte, valid []byte, wantRecords int) {
	d := NewDecoder(DecoderConfig{KeepExtensions: true, EmitOptions: true, PendingMaxPerExporter: 8})
	b := &core.Batch{}
	for i := 0; i < 2; i++ {
		_, _ = d.Decode(core.Packet{Data: data, Exporter: exporterA, Received: testReceived}, b)
	}
	for i := range b.Records {
		if b.Records[i].Exporter != exporterA.Addr() {
			t.Fatalf("record %d without exporter", i)
		}
	}
	d.Expire(timeAfter(testReceived))
	b2 := &core.Batch{}
	st, err := d.Decode(core.Packet{Data: valid, Exporter: exporterB, Received: testReceived}, b2)
	if err != nil || st.Records != wantRecords {
		t.Fatalf("valid packet after garbage: %+v, %v", st, err)
	}
	if _, err := MarshalTemplates(d.Templates()); err != nil {
		t.Fatalf("marshal templates: %v", err)
	}
}

func validV9() []byte {
	return v9Packet(1000000, testSecs, 1, set(0, v9Tpl(300, fiveTuple...)), set(300, fiveTupleRec(1), fiveTupleRec(2)))
}

func validIPFIX() []byte {
	return ipfixPacket(testSecs, 1, set(2, ipfixTpl(300, ipfixFiveTuple...)), set(300, ipfixFiveTupleRec(1), ipfixFiveTupleRec(2)))
}

func FuzzDecodeV5(f *testing.F) {
	addCorpusSeeds(f, 5)
	f.Add(v5Packet(2, 2, 0))
	f.Add(v5Packet(30, 1, 0x4001))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := &core.Batch{}
		n, err := DecodeV5(data, exporterA, testReceived, b)
		if n != len(b.Records) || (err == nil && len(data) >= 4 && n != int(be16(data[2:])) && be16(data) == 5) {
			t.Fatalf("n %d records %d err %v", n, len(b.Records), err)
		}
		fuzzDecode(t, data, v5Packet(3, 3, 0), 3)
	})
}

func FuzzDecodeV9(f *testing.F) {
	addCorpusSeeds(f, 9)
	f.Add(validV9())
	f.Add(v9Packet(1, testSecs, 9, set(1, v9OptTpl(260, []fld{{1, 4, 0}}, []fld{{48, 1, 0}, {34, 4, 0}})), set(260, u32(0), []byte{5}, u32(512))))
	f.Add(v9Packet(1, testSecs, 1, set(0, v9Tpl(301, fld{82, varLen, 0}, fld{8, 4, 0})), set(301, []byte{255, 0, 3, 'a', 'b', 'c', 1, 2, 3, 4})))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, validV9(), 2)
	})
}

func FuzzDecodeIPFIX(f *testing.F) {
	addCorpusSeeds(f, 10)
	f.Add(validIPFIX())
	f.Add(ipfixPacket(testSecs, 1, set(2, ipfixTpl(500, fld{8, 4, 0}, fld{462, varLen, 5951})), set(500, []byte{1, 2, 3, 4, 1, 'x'})))
	f.Add(ipfixPacket(testSecs, 1, set(2, ipfixTpl(2)), set(3, ipfixOptTpl(600, 1, fld{302, 4, 0}, fld{305, 4, 0}, fld{306, 4, 0}))))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, validIPFIX(), 2)
	})
}
