package duckdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/flowgen"
)

// The benchmarks measure the store on realistic data: flowgen's traffic
// (NetFlow v5, Zipf-like servers, heavy-tailed counters), arriving at a
// steady rate and aggregated like the default config (5-tuple keys, 1m bins,
// a refresh every 30s), until n rows are emitted.
//
//	go test -run '^$' -bench . -benchtime 1x ./plugins/outputs/duckdb/
//	go test -run '^$' -bench Ingest -benchtime 1x -cpu 1 ./plugins/outputs/duckdb/

type aggKey struct {
	src, dst         [4]byte
	srcPort, dstPort uint16
	proto            uint8
}

type aggVal struct {
	packets, bytes, flows uint64
	flags                 uint8
}

// realisticRows aggregates flowgen traffic from hosts client hosts arriving
// at rate flows/s until n rows are emitted.
func realisticRows(n, hosts int, rate float64) []core.Record {
	start := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	var produced uint64
	now := func() time.Time { return start.Add(time.Duration(float64(produced) / rate * float64(time.Second))) }
	g, err := flowgen.NewGenerator(flowgen.Config{Version: 5, Seed: 42, HostPool: hosts, Clock: now})
	if err != nil {
		panic(err)
	}
	out := make([]core.Record, 0, n)
	table := map[aggKey]*aggVal{}
	bin := start
	refresh := start.Add(30 * time.Second)
	emit := func(at time.Time) {
		for k, v := range table {
			if len(out) == n {
				break
			}
			r := core.Record{
				SrcAddr: netip.AddrFrom4(k.src), DstAddr: netip.AddrFrom4(k.dst),
				SrcPort: k.srcPort, DstPort: k.dstPort, Proto: k.proto, TCPFlags: v.flags,
				Packets: v.packets, Bytes: v.bytes, Flows: v.flows,
				StampInserted: bin.UnixNano(), StampUpdated: at.UnixNano(),
				Present: fiveTuple | core.FieldPackets | core.FieldBytes | core.FieldStamps,
			}
			out = append(out, r)
		}
		clear(table)
	}
	for len(out) < n {
		pkt, kind, flows := g.Next()
		if kind != flowgen.PacketData {
			continue
		}
		t := now()
		if !t.Before(refresh) || t.Truncate(time.Minute) != bin {
			emit(refresh)
			refresh = refresh.Add(30 * time.Second)
			bin = t.Truncate(time.Minute)
		}
		for i := range flows {
			rec := pkt[24+48*i:]
			var k aggKey
			copy(k.src[:], rec[0:4])
			copy(k.dst[:], rec[4:8])
			k.srcPort = binary.BigEndian.Uint16(rec[32:34])
			k.dstPort = binary.BigEndian.Uint16(rec[34:36])
			k.proto = rec[38]
			v := table[k]
			if v == nil {
				v = &aggVal{}
				table[k] = v
			}
			v.packets += uint64(binary.BigEndian.Uint32(rec[16:20]))
			v.bytes += uint64(binary.BigEndian.Uint32(rec[20:24]))
			v.flows++
			v.flags |= rec[37]
		}
		produced += uint64(flows)
	}
	return out
}

var (
	rowsMu    sync.Mutex
	rowsCache = map[string][]core.Record{}
)

func cachedRows(n, hosts int, rate float64) []core.Record {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	key := fmt.Sprint(n, hosts, rate)
	if r, ok := rowsCache[key]; ok {
		return r
	}
	r := realisticRows(n, hosts, rate)
	rowsCache[key] = r
	return r
}

func writeAll(tb testing.TB, s *Store, recs []core.Record) { writeBatches(tb, s, recs, 1024) }

func writeBatches(tb testing.TB, s *Store, recs []core.Record, size int) {
	for i := 0; i < len(recs); i += size {
		if _, err := s.Write(context.Background(), recs[i:min(i+size, len(recs))]); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkStoredSize reports bytes per stored row (a "flow" in the stats)
// for 1,000,000 aggregated rows: in DuckDB's file (used blocks after a
// checkpoint) and in the zstd Parquet archive.
func BenchmarkStoredSize(b *testing.B) {
	for _, c := range []struct {
		hosts int
		rate  float64
	}{{1000, 20000}, {10000, 20000}, {50000, 50000}} {
		b.Run(fmt.Sprintf("hosts=%d/rate=%.0f", c.hosts, c.rate), func(b *testing.B) {
			recs := cachedRows(1_000_000, c.hosts, c.rate)
			for b.Loop() {
				dir := b.TempDir()
				s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "f.duckdb"), Archive: filepath.Join(dir, "archive")})
				if err != nil {
					b.Fatal(err)
				}
				writeAll(b, s, recs)
				if err := s.Checkpoint(context.Background()); err != nil {
					b.Fatal(err)
				}
				hot, err := s.hotBytes(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				st, _ := os.Stat(filepath.Join(dir, "f.duckdb"))
				end := time.Unix(0, recs[len(recs)-1].StampInserted).Add(time.Hour)
				if _, err := s.Compact(context.Background(), end, policy(0, 0)); err != nil {
					b.Fatal(err)
				}
				var comp uint64
				for _, f := range s.files {
					comp += f.fileBytes
				}
				res, err := s.Query(context.Background(), fmt.Sprintf(`SELECT path_in_schema, any_value(encodings), round(sum(total_compressed_size) / %d, 2) AS per_row
					FROM parquet_metadata(%s) GROUP BY ALL ORDER BY per_row DESC`, len(recs), quote(s.absPath(s.files[0].path))))
				if err == nil {
					b.Logf("bytes per row by column (first file): %v", res.Rows)
				}
				s.Close()
				b.ReportMetric(float64(hot)/float64(len(recs)), "B/row-hot")
				b.ReportMetric(float64(st.Size())/float64(len(recs)), "B/row-hotfile")
				b.ReportMetric(float64(comp)/float64(len(recs)), "B/row-zstd")
				b.ReportMetric(float64(len(s.files)), "files")
			}
		})
	}
}

// BenchmarkIngest reports rows per second into the hot table, in batches of
// 1024 as the engine hands them over. Run with -cpu 1 for one core (DuckDB
// is limited to one thread too).
func BenchmarkIngest(b *testing.B) {
	for _, size := range []int{1024, 8192, 16384} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchIngest(b, size) })
	}
}

func benchIngest(b *testing.B, size int) {
	recs := cachedRows(1_000_000, 10000, 20000)
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "f.duckdb"), Archive: filepath.Join(dir, "archive"), Threads: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0, c0 := time.Now(), cpuTime()
		writeBatches(b, s, recs, size)
		// The checkpoint that compresses what the WAL holds is part of the cost.
		if err := s.Checkpoint(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(recs))/time.Since(t0).Seconds(), "rows/s")
		b.ReportMetric(float64(len(recs))/(cpuTime()-c0).Seconds(), "rows/cpu-s")
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}

// BenchmarkTop10M times `flowline top`'s query over 10,000,000 stored rows:
// ten hours of the realistic million, five compressed, five hot.
func BenchmarkTop10M(b *testing.B) {
	recs := cachedRows(1_000_000, 10000, 20000)
	dir := b.TempDir()
	s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "f.duckdb"), Archive: filepath.Join(dir, "archive")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	shifted := make([]core.Record, len(recs))
	base := time.Unix(0, recs[0].StampInserted)
	for h := range 10 {
		copy(shifted, recs)
		for i := range shifted {
			shifted[i].StampInserted += int64(h) * int64(time.Hour)
			shifted[i].StampUpdated += int64(h) * int64(time.Hour)
		}
		writeAll(b, s, shifted)
		if h == 4 {
			if _, err := s.Compact(context.Background(), base.Add(5*time.Hour), policy(0, 0)); err != nil {
				b.Fatal(err)
			}
		}
	}
	st, err := s.Stats(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if st.HotRows+st.CompressedRows != 10_000_000 {
		b.Fatalf("%d hot + %d compressed rows", st.HotRows, st.CompressedRows)
	}
	q := fmt.Sprintf(`SELECT dst_host, sum(bytes) AS bytes, sum(packets) AS packets, sum(flows) AS flows
FROM flows_all WHERE stamp_inserted >= make_timestamp(%d) GROUP BY ALL ORDER BY bytes DESC, dst_host LIMIT 10`, base.Add(-time.Hour).UnixMicro())
	b.ResetTimer()
	for b.Loop() {
		res, err := s.Query(context.Background(), q)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Rows) != 10 {
			b.Fatalf("%d rows", len(res.Rows))
		}
	}
	b.StopTimer()
	for _, by := range []string{"src_host", "dst_port", "src_host, dst_host, dst_port"} {
		t0 := time.Now()
		if _, err := s.Query(context.Background(), fmt.Sprintf("SELECT %s, sum(bytes) AS bytes FROM flows_all GROUP BY ALL ORDER BY bytes DESC LIMIT 10", by)); err != nil {
			b.Fatal(err)
		}
		b.Logf("top by %s over 10M rows: %s", by, time.Since(t0).Round(time.Millisecond))
	}
}

// randomRows are uniformly random 5-tuples (the worst case for a store that
// relies on repeated keys): random IPv4 addresses and ports, 1m bins over
// an hour.
func randomRows(n int) []core.Record {
	var x uint64 = 88172645463325252
	next := func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
	start := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	out := make([]core.Record, n)
	for i := range out {
		r := &out[i]
		a, b := next(), next()
		r.SrcAddr = netip.AddrFrom4([4]byte{byte(a), byte(a >> 8), byte(a >> 16), byte(a >> 24)})
		r.DstAddr = netip.AddrFrom4([4]byte{byte(b), byte(b >> 8), byte(b >> 16), byte(b >> 24)})
		r.SrcPort, r.DstPort = uint16(a>>32), uint16(b>>32)
		r.Proto = []uint8{6, 17, 1}[a>>48%3]
		r.TCPFlags = uint8(b >> 48)
		r.Packets = 1 + b>>56
		r.Bytes = r.Packets * (40 + a>>53%1460)
		r.Flows = 1
		bin := start.Add(time.Duration(i*60/n) * time.Minute)
		r.StampInserted, r.StampUpdated = bin.UnixNano(), bin.Add(time.Minute).UnixNano()
		r.Present = fiveTuple | core.FieldPackets | core.FieldBytes | core.FieldStamps
	}
	return out
}

// BenchmarkSortOrder compares archive sort orders on the same rows
// (compressed bytes per row); the store uses the first.
func BenchmarkSortOrder(b *testing.B) {
	orders := map[string][]string{
		"key-then-time": sortKeys,
		"time-then-key": append([]string{"stamp_inserted"}, sortKeys...),
		"dst-first":     append([]string{"dst_host", "dst_port", "proto", "src_host", "src_port"}, sortKeys...),
		"time-then-src": {"stamp_inserted", "src_host"},
	}
	saved := sortKeys
	defer func() { sortKeys = saved }()
	for _, data := range []string{"flowgen", "random"} {
		var recs []core.Record
		if data == "flowgen" {
			recs = cachedRows(1_000_000, 10000, 20000)
		} else {
			recs = randomRows(1_000_000)
		}
		for _, name := range []string{"key-then-time", "time-then-key", "src-first", "time-then-src"} {
			b.Run(data+"/"+name, func(b *testing.B) {
				sortKeys = orders[name]
				for b.Loop() {
					dir := b.TempDir()
					s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "f.duckdb"), Archive: filepath.Join(dir, "archive")})
					if err != nil {
						b.Fatal(err)
					}
					writeAll(b, s, recs)
					s.Checkpoint(context.Background())
					hot, _ := s.hotBytes(context.Background())
					end := time.Unix(0, recs[len(recs)-1].StampInserted).Add(time.Hour)
					if _, err := s.Compact(context.Background(), end, policy(0, 0)); err != nil {
						b.Fatal(err)
					}
					var comp uint64
					for _, f := range s.files {
						comp += f.fileBytes
					}
					s.Close()
					b.ReportMetric(float64(hot)/float64(len(recs)), "B/row-hot")
					b.ReportMetric(float64(comp)/float64(len(recs)), "B/row-zstd")
				}
			})
		}
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkParquetOptions compares Parquet writer options on the same rows.
func BenchmarkParquetOptions(b *testing.B) {
	saved := parquetOptions
	defer func() { parquetOptions = saved }()
	recs := cachedRows(1_000_000, 10000, 20000)
	for _, o := range []struct{ name, opt string }{{"v2", ", PARQUET_VERSION v2"}, {"v1", ", PARQUET_VERSION v1"}, {"v2-dict", ", PARQUET_VERSION v2, DICTIONARY_SIZE_LIMIT 1000000"}} {
		b.Run(o.name, func(b *testing.B) {
			parquetOptions = o.opt
			for b.Loop() {
				dir := b.TempDir()
				s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "f.duckdb"), Archive: filepath.Join(dir, "archive")})
				if err != nil {
					b.Fatal(err)
				}
				writeAll(b, s, recs)
				end := time.Unix(0, recs[len(recs)-1].StampInserted).Add(time.Hour)
				if _, err := s.Compact(context.Background(), end, policy(0, 0)); err != nil {
					b.Fatal(err)
				}
				var comp uint64
				for _, f := range s.files {
					comp += f.fileBytes
				}
				s.Close()
				b.ReportMetric(float64(comp)/float64(len(recs)), "B/row-zstd")
			}
		})
	}
}
