package mysql

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/lifecycle"
)

func testRows(n int, updated int64) []row {
	rows := make([]row, n)
	for i := range rows {
		rows[i] = row{SrcAddr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), DstAddr: netip.MustParseAddr("2001:db8::1"),
			Inserted: 1_700_000_400, Updated: updated, Packets: uint64(i + 1), Bytes: uint64(100 * (i + 1)), Flows: 1,
			SrcPort: uint16(i), DstPort: 443, Proto: 6, TCPFlags: 0x1b, SrcMAC: [6]byte{0, 1, 2, 3, 4, byte(i)}, VLAN: 7}
	}
	return rows
}

// TestBufferMemoryThenSpool: memory first, then spool files, in order; a
// close spills memory; a new buffer on the same directory resumes in order
// and skips what the ledger already holds.
func TestBufferMemoryThenSpool(t *testing.T) {
	dir := t.TempDir()
	b := newBuffer(dir, 250, 1<<20)
	b.SetNextSeq(1) // readable numbers
	if err := b.Open(0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		dropped, err := b.Push(testRows(100, int64(i/2)), int64(i/2))
		if dropped != 0 || err != nil {
			t.Fatalf("push %d: dropped %d, %v", i, dropped, err)
		}
	}
	mem, spool, chunks := b.Sizes()
	if mem != 200 || spool == 0 || chunks != 6 {
		t.Fatalf("memory %d rows, spool %d bytes, %d chunks; want 200 rows in memory, the rest spooled", mem, spool, chunks)
	}
	// Memory back to room: the next chunk still goes to the spool (order).
	g, err := b.Peek(1000)
	if err != nil || len(g) != 2 || g[0].Seq != 1 || g[1].Seq != 2 {
		t.Fatalf("head: %d chunks (%v); want the two chunks of the first refresh", len(g), err)
	}
	b.Commit(g)
	b.Push(testRows(10, 9), 9)
	if _, _, n := b.Sizes(); n != 5 {
		t.Fatalf("%d chunks waiting, want 5", n)
	}
	// Close: memory is spilled, everything is in files.
	if lost, err := b.Spill(); lost != 0 || err != nil {
		t.Fatalf("spill lost %d: %v", lost, err)
	}
	b2 := newBuffer(dir, 250, 1<<20)
	if err := b2.Open(3); err != nil {
		t.Fatal(err)
	}
	b2.DropThrough(3) // the ledger says 3 landed
	var got []uint64
	for !b2.Empty() {
		g, err := b2.Peek(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range g {
			got = append(got, c.Seq)
			if c.Items[5].SrcAddr != netip.AddrFrom4([4]byte{10, 0, 0, 5}) || c.Items[5].Packets != 6 || c.Items[5].SrcMAC[5] != 5 {
				t.Fatalf("chunk %d row 5 decoded as %+v", c.Seq, c.Items[5])
			}
		}
		b2.Commit(g)
	}
	if fmt.Sprint(got) != "[4 5 6 7]" {
		t.Fatalf("resumed chunks %v, want 4 5 6 7", got)
	}
	if n, _ := b2.Push(testRows(1, 0), 0); n != 0 {
		t.Fatal("push after resume dropped")
	}
	if g, _ := b2.Peek(10); g[0].Seq <= 7 {
		t.Fatalf("next sequence %d, want above every earlier one", g[0].Seq)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("%d spool files left after everything was committed", len(ents))
	}
}

// The spool's bounds and its handling of corrupt files are tested in
// plugins/common/spool.

// TestStatements: pmacct's value forms and update clause.
func TestStatements(t *testing.T) {
	o := New()
	o.OptimizeClauses = true
	o.Primitives = []string{"src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto", "src_mac"}
	if err := o.Init(core.NewEnv("test", "")); err != nil {
		t.Fatal(err)
	}
	r := testRows(2, 1_700_000_430)[1]
	got := string(o.appendValues(nil, &r))
	want := "('00:01:02:03:04:01','10.0.0.1','2001:db8::1',1,443,27,'tcp',2,200,FROM_UNIXTIME(1700000400),FROM_UNIXTIME(1700000430))"
	if got != want {
		t.Fatalf("values\n got %s\nwant %s", got, want)
	}
	if h := o.insertHead(); h != "INSERT INTO `pmacct`.`acct` (mac_src, ip_src, ip_dst, port_src, port_dst, tcp_flags, ip_proto, packets, bytes, stamp_inserted, stamp_updated) VALUES " {
		t.Fatalf("head %s", h)
	}
	if tail := o.insertTail(true); tail != " ON DUPLICATE KEY UPDATE packets=packets+VALUES(packets), bytes=bytes+VALUES(bytes), tcp_flags=tcp_flags|VALUES(tcp_flags), stamp_updated=VALUES(stamp_updated)" {
		t.Fatalf("tail %s", tail)
	}
	// Full v9: every column, pmacct's fillers where no primitive selects.
	o = New()
	o.Primitives = []string{"src_host", "dst_host", "proto"}
	if err := o.Init(core.NewEnv("test", "")); err != nil {
		t.Fatal(err)
	}
	got = string(o.appendValues(nil, &r))
	want = "(0,'unknown','0:0:0:0:0:0','0:0:0:0:0:0',0,0,0,'10.0.0.1','2001:db8::1',0,0,0,'tcp',0,2,200,1,FROM_UNIXTIME(1700000400),FROM_UNIXTIME(1700000430))"
	if got != want {
		t.Fatalf("v9 values\n got %s\nwant %s", got, want)
	}
	// Sort keys follow the primary key: stamp first, then the columns.
	o2 := New()
	o2.OptimizeClauses, o2.Primitives = true, []string{"src_host", "src_port"}
	o2.Init(core.NewEnv("test", ""))
	a, b := testRows(3, 0)[1], testRows(3, 0)[2]
	a.SrcAddr, b.SrcAddr = netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.50")
	ka, kb := string(o2.lay.appendSortKey(nil, &a)), string(o2.lay.appendSortKey(nil, &b))
	if !(ka < kb) {
		t.Fatal("sort key: 10.0.0.5 must sort before 10.0.0.50 (as CHAR columns do)")
	}
}

func TestFromRecordKeepsOnlySelectedFields(t *testing.T) {
	rec := core.Record{SrcAddr: netip.MustParseAddr("192.0.2.1"), DstAddr: netip.MustParseAddr("192.0.2.2"), SrcPort: 1, DstPort: 2, Proto: 17,
		Packets: 3, Bytes: 4, StampInserted: 1_700_000_400e9, StampUpdated: 1_700_000_430_500_000_000,
		Present: core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldProto | core.FieldStamps}
	mask, _ := core.PrimitiveMask([]string{"src_host", "proto"})
	var r row
	r.fromRecord(&rec, mask, 0)
	if r.DstAddr.IsValid() || r.SrcPort != 0 || !r.SrcAddr.IsValid() || r.Proto != 17 || r.Inserted != 1_700_000_400 || r.Updated != 1_700_000_430 {
		t.Fatalf("row %+v", r)
	}
}

// TestPrimitivesFromThePipeline: with optimize_clauses the output takes the
// aggregate's primitives from Env; given ones must be the same set (in any
// order) or Init fails naming both lists; none anywhere is an error.
func TestPrimitivesFromThePipeline(t *testing.T) {
	agg := []string{"src_host", "dst_host", "proto"}
	for name, tc := range map[string]struct {
		given, pipeline []string
		want            string // "" for success
	}{
		"learned":            {nil, agg, ""},
		"repeated":           {[]string{"proto", "src_host", "dst_host"}, agg, ""},
		"different":          {[]string{"src_host", "dst_host"}, agg, "primitives = [src_host, dst_host] differ from the aggregate's [src_host, dst_host, proto]"},
		"none anywhere":      {nil, nil, "optimize_clauses = true needs the primitives"},
		"given, no pipeline": {agg, nil, ""},
	} {
		o := New()
		o.OptimizeClauses, o.Primitives = true, tc.given
		if err := o.Validate(); err != nil {
			t.Fatalf("%s: config check: %v", name, err)
		}
		env := core.NewEnv("mysql", t.TempDir())
		env.Primitives = tc.pipeline
		err := o.Init(env)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		case tc.want == "" && len(o.lay.keys) != 3:
			t.Errorf("%s: %d key columns, want 3", name, len(o.lay.keys))
		}
	}
}

func TestConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		mut  func(o *MySQL)
		want string
	}{
		"primitive outside v9": {func(o *MySQL) { o.Primitives = []string{"in_iface"} }, "column iface_in is not in pmacct's v9 table"},
		"unknown primitive":    {func(o *MySQL) { o.Primitives = []string{"bogus"} }, `unknown primitive "bogus"`},
		"table version":        {func(o *MySQL) { o.TableVersion = 7 }, "only pmacct's version 9"},
		"tls":                  {func(o *MySQL) { o.TLS = "maybe" }, `tls = "maybe"`},
		"rollup primitive not written": {func(o *MySQL) {
			o.OptimizeClauses, o.Primitives = true, []string{"src_host"}
			o.Lifecycle.Rollups = []lifecycle.Rollup{{History: core.Duration(time.Hour), Primitives: []string{"proto"}}}
		}, "primitive proto is not one the output writes"},
		"level": {func(o *MySQL) { o.Lifecycle.CompressLevel = 12 }, "compress_level = 12"},
	} {
		o := New()
		tc.mut(o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	o := New()
	if err := o.Validate(); err != nil || o.policy != nil {
		t.Fatalf("defaults: %v, policy %v (want none without a lifecycle table)", err, o.policy)
	}
	o = New()
	o.Lifecycle.CompressAfter = 0
	if err := o.Validate(); err != nil || o.policy == nil || o.policy.CompressAfter != 0 || o.policy.DeleteAfter != core.Duration(90*24*time.Hour) || o.policy.CompressLevel != 6 {
		t.Fatalf("compress_after = 0s: %v, %+v", err, o.policy)
	}
}

// TestNewProcessNumbersAboveOldLedger: a process that starts while the
// database is away numbers its batches above anything an earlier process
// committed, so the ledger check at reconnection drops none of them.
func TestNewProcessNumbersAboveOldLedger(t *testing.T) {
	old := newBuffer("", 10, 0)
	old.Open(0)
	old.Push(testRows(1, 0), 0)
	g, _ := old.Peek(10)
	committed := g[0].Seq
	time.Sleep(time.Millisecond)
	b := newBuffer("", 10, 0)
	b.Open(0)
	b.Push(testRows(1, 0), 0)
	b.DropThrough(committed)
	if b.Empty() {
		t.Fatal("a new process's batch was taken for one the old process committed")
	}
}
