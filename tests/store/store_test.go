package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/plugins/outputs/duckdb"
)

func portsEnv(t *testing.T) (env []string, udp int) {
	udp = freeUDPPort(t)
	return []string{
		fmt.Sprintf("FLOWLINE_NETFLOW_ADDRESS=127.0.0.1:%d", udp),
		fmt.Sprintf("FLOWLINE_METRICS_ADDRESS=127.0.0.1:%d", freeTCPPort(t)),
	}, udp
}

// TestDefaultRunStoresExactTotals is the newcomer's loop: `flowline run`
// with no config in a fresh directory, flowgen, SIGTERM, `flowline query`;
// then `flowline compact --now` with compress_after = "0s" and a rollup tier.
func TestDefaultRunStoresExactTotals(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	env, udp := portsEnv(t)
	c := start(t, dir, env) // no --config: the embedded default
	tot := send(t, flowgen.Config{Target: fmt.Sprintf("127.0.0.1:%d", udp), Version: 9, Flows: 600_000, Rate: 150_000, Seed: 3, IPv6Share: 0.1})
	// While the collector runs, the store commands go through its API.
	cli(t, dir, env, "top", "--by", "dst_host", "--since", "1h")
	time.Sleep(300 * time.Millisecond)
	c.Stop()

	got := queryTotals(t, dir, env, "flows_all")
	if got.Packets != tot.FlowPackets || got.Bytes != tot.FlowBytes || got.Flows != tot.Flows {
		t.Fatalf("stored %+v; flowgen sent %d flows, %d packets, %d bytes\n%s", got, tot.Flows, tot.FlowPackets, tot.FlowBytes, c.Log())
	}
	t.Logf("%d flows -> %d rows; %d packets, %d bytes exact", tot.Flows, got.Rows, got.Packets, got.Bytes)

	// The same store with compress_after = "0s" and an hourly rollup tier.
	def, err := os.ReadFile(filepath.Join(repoRoot(), "configs", "flowline.toml"))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(def), `compress_after = "1h"`, `compress_after = "0s"`, 1)
	conf += "\n    [[outputs.duckdb.lifecycle.rollup]]\n      after = \"0s\"\n      history = \"1h\"\n      primitives = [\"src_host\", \"dst_host\", \"proto\"]\n"
	cfg := filepath.Join(dir, "compact.toml")
	writeFile(t, cfg, conf)
	out := cli(t, dir, env, "compact", "--config", cfg, "--now")
	t.Log(strings.TrimSpace(out))
	if hot := queryTotals(t, dir, env, "flows", "--config", cfg); hot.Rows != 0 {
		t.Fatalf("hot table holds %d rows after compact --now with compress_after 0s", hot.Rows)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "data", "archive", "raw", "v1", "*.parquet"))
	if len(files) == 0 {
		t.Fatal("no compressed files after compact --now")
	}
	if after := queryTotals(t, dir, env, "flows_all", "--config", cfg); after != got {
		t.Fatalf("after compaction %+v, before %+v", after, got)
	}
	// The tier covers the compressed partitions (after = "0s" once they are
	// whole); its totals equal the raw ones either way.
	tier := queryTotals(t, dir, env, "flows_1h", "--config", cfg)
	if tier.Packets != got.Packets || tier.Bytes != got.Bytes || tier.Flows != got.Flows {
		t.Fatalf("flows_1h %+v, flows_all %+v", tier, got)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(cli(t, dir, env, "stats", "--config", cfg, "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"flows_per_second", "flows_per_minute", "flows_per_hour", "hot_rows", "hot_bytes", "compressed_rows",
		"compressed_bytes", "bytes_per_flow_hot", "bytes_per_flow_compressed", "compression_ratio",
		"projected_bytes_per_day", "projected_bytes_per_month", "projected_bytes_per_year"} {
		if _, ok := st[k]; !ok {
			t.Errorf("stats --format json lacks %q", k)
		}
	}
	if st["compressed_rows"].(float64) != float64(got.Rows) || st["hot_rows"].(float64) != 0 {
		t.Errorf("stats: %v", st)
	}
	t.Logf("stats: %.1f bytes/flow compressed, %.0f flows/s", st["bytes_per_flow_compressed"], st["flows_per_second"])
}

// TestCompactThroughRunningCollector: `flowline compact --now` and
// `flowline query` while the collector holds the file.
func TestCompactThroughRunningCollector(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	udp, mport := freeUDPPort(t), freeTCPPort(t)
	cfg := filepath.Join(dir, "flowline.toml")
	writeFile(t, cfg, storeConfig(udp, mport, "1s", `  [outputs.duckdb.lifecycle]
    compress_after = "0s"
    check_every = "1h"`))
	c := start(t, dir, nil, "--config", cfg)
	target := fmt.Sprintf("127.0.0.1:%d", udp)
	a := send(t, flowgen.Config{Target: target, Version: 10, Flows: 200_000, Rate: 150_000, Seed: 5})
	time.Sleep(2500 * time.Millisecond) // two refreshes
	out := cli(t, dir, nil, "compact", "--config", cfg, "--now")
	if !strings.Contains(out, "running collector") {
		t.Fatalf("compact did not go through the collector: %s", out)
	}
	if hot := queryTotals(t, dir, nil, "flows", "--config", cfg); hot.Rows != 0 {
		t.Fatalf("hot rows after compaction: %d", hot.Rows)
	}
	mid := queryTotals(t, dir, nil, "flows_all", "--config", cfg)
	if mid.Packets != a.FlowPackets {
		t.Fatalf("through the API: %+v, sent %d packets", mid, a.FlowPackets)
	}
	b := send(t, flowgen.Config{Target: target, Version: 10, Flows: 100_000, Rate: 150_000, Seed: 6})
	time.Sleep(300 * time.Millisecond)
	c.Stop()
	got := queryTotals(t, dir, nil, "flows_all", "--config", cfg)
	if got.Packets != a.FlowPackets+b.FlowPackets || got.Bytes != a.FlowBytes+b.FlowBytes {
		t.Fatalf("stored %+v, sent %d packets, %d bytes", got, a.FlowPackets+b.FlowPackets, a.FlowBytes+b.FlowBytes)
	}
}

// duplicates counts rows that share key, bin and stamp_updated with
// another: one refresh writes a key once, so such a row was stored twice.
const duplicates = `SELECT count(*) AS n, 0 AS packets, 0 AS bytes, 0 AS flows FROM (
  SELECT stamp_inserted, stamp_updated, src_host, dst_host, src_port, dst_port, proto, count(*) AS c
  FROM flows_all GROUP BY ALL HAVING c > 1)`

func checkNoDuplicates(t *testing.T, dir string, args ...string) {
	t.Helper()
	out := cli(t, dir, nil, append(append([]string{"query", "--format", "json"}, args...), duplicates)...)
	if n := num(t, decodeRows(t, out)[0]["n"]); n != 0 {
		t.Fatalf("%d keys stored twice", n)
	}
}

// TestKillDuringIngestion kills the collector (kill -9) while flowgen
// sends and while its own life cycle compacts every second, three times.
//
// "Acknowledged" is what the store answered through the collector's API
// just before the kill: rows committed by then. After each kill the file
// must hold at least that (nothing committed is lost), at most what flowgen
// sent (nothing invented), no row twice; a restart and a compaction must
// not change it.
func TestKillDuringIngestion(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	udp, mport := freeUDPPort(t), freeTCPPort(t)
	cfg := filepath.Join(dir, "flowline.toml")
	writeFile(t, cfg, storeConfig(udp, mport, "200ms", `  [outputs.duckdb.lifecycle]
    compress_after = "0s"
    check_every = "300ms"`))
	target := fmt.Sprintf("127.0.0.1:%d", udp)
	var sent flowgen.Totals
	var stored storeTotals
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 3 {
		c := start(t, dir, nil, "--config", cfg)
		done := make(chan flowgen.Totals)
		go func() {
			tot, _ := flowgen.Run(context.Background(), flowgen.Config{Target: target, Version: 9, Rate: 150_000, Duration: 3 * time.Second, Seed: int64(10 + round)})
			done <- tot
		}()
		time.Sleep(time.Duration(1500+rng.IntN(1000)) * time.Millisecond)
		acked := queryTotals(t, dir, nil, "flows_all", "--config", cfg)
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		c.Kill()
		tot := <-done
		sent.Flows += tot.Flows
		sent.FlowPackets += tot.FlowPackets
		sent.FlowBytes += tot.FlowBytes

		after := queryTotals(t, dir, nil, "flows_all", "--config", cfg)
		if after.Packets < acked.Packets || after.Bytes < acked.Bytes {
			t.Fatalf("round %d: %+v after kill -9, but %+v was acknowledged before it", round, after, acked)
		}
		if after.Packets > sent.FlowPackets || after.Bytes > sent.FlowBytes || after.Packets < stored.Packets {
			t.Fatalf("round %d: %+v stored; %d packets, %d bytes sent; %d packets stored before this round", round, after, sent.FlowPackets, sent.FlowBytes, stored.Packets)
		}
		checkNoDuplicates(t, dir, "--config", cfg)
		stored = after
		t.Logf("round %d: acknowledged %d packets before the kill, %d stored after it, %d sent in all", round, acked.Packets, after.Packets, sent.FlowPackets)
	}
	// Restart (orphans of an interrupted pass are removed), stop, compact.
	c := start(t, dir, nil, "--config", cfg)
	c.Stop()
	if got := queryTotals(t, dir, nil, "flows_all", "--config", cfg); got != stored {
		t.Fatalf("after restart %+v, before %+v", got, stored)
	}
	cli(t, dir, nil, "compact", "--config", cfg, "--now")
	if got := queryTotals(t, dir, nil, "flows_all", "--config", cfg); got.Packets != stored.Packets || got.Bytes != stored.Bytes {
		t.Fatalf("after compaction %+v, before %+v", got, stored)
	}
	if hot := queryTotals(t, dir, nil, "flows", "--config", cfg); hot.Rows != 0 {
		t.Fatalf("hot rows after compaction: %d", hot.Rows)
	}
	checkNoDuplicates(t, dir, "--config", cfg)
}

// TestKillDuringCompaction kills `flowline compact --now` at random moments
// of a pass over many partitions; after every kill the totals are exactly
// those before it, and the passes that follow finish the work.
func TestKillDuringCompaction(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowline.toml")
	writeFile(t, cfg, storeConfig(freeUDPPort(t), freeTCPPort(t), "1s", `  [outputs.duckdb.lifecycle]
    compress_after = "0s"
    [[outputs.duckdb.lifecycle.rollup]]
      after = "0s"
      history = "1h"
      primitives = ["dst_host", "proto"]`))
	data := filepath.Join(dir, "data")
	var want storeTotals
	fill := func(seed int) {
		s, err := duckdb.Open(context.Background(), duckdb.Options{Path: filepath.Join(data, "flowline.duckdb"), Archive: filepath.Join(data, "archive")})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		base := time.Now().Add(-48 * time.Hour).Truncate(time.Hour)
		for h := range 24 {
			recs := rows(20_000, base.Add(time.Duration(h)*time.Hour), seed*100+h)
			if _, err := s.Write(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				want.Rows++
				want.Packets += r.Packets
				want.Bytes += r.Bytes
				want.Flows += r.Flows
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 3))
	kills := 0
	for round := range 10 {
		if round%3 != 2 { // most rounds bring new rows; some only finish the work
			fill(round)
		}
		cmd := exec.Command(flowlineBin, "compact", "--config", cfg, "--now")
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-time.After(time.Duration(30+rng.IntN(1500)) * time.Millisecond):
			_ = cmd.Process.Kill()
			<-exited
			kills++
		case err := <-exited:
			if err != nil {
				t.Fatalf("round %d: compact failed: %v", round, err)
			}
		}
		got := queryTotals(t, dir, nil, "flows_all", "--config", cfg)
		if got != want {
			t.Fatalf("round %d: %+v after a killed compaction, want %+v", round, got, want)
		}
		tier := queryTotals(t, dir, nil, "flows_1h", "--config", cfg)
		if tier.Packets != want.Packets || tier.Bytes != want.Bytes || tier.Flows != want.Flows {
			t.Fatalf("round %d: flows_1h %+v, want %+v", round, tier, want)
		}
		hot := queryTotals(t, dir, nil, "flows", "--config", cfg)
		files := decodeRows(t, cli(t, dir, nil, "query", "--config", cfg, "--format", "json", "SELECT count(*) FILTER (WHERE tier = 'raw') AS raw, count(*) FILTER (WHERE tier = '1h') AS tier FROM flowline_files"))[0]
		t.Logf("round %d: %d hot rows left, %v raw files, %v tier files", round, hot.Rows, files["raw"], files["tier"])
	}
	out := cli(t, dir, nil, "compact", "--config", cfg, "--now")
	if got := queryTotals(t, dir, nil, "flows_all", "--config", cfg); got != want {
		t.Fatalf("final: %+v, want %+v", got, want)
	}
	if hot := queryTotals(t, dir, nil, "flows", "--config", cfg); hot.Rows != 0 {
		t.Fatalf("hot rows after the last pass: %d (%s)", hot.Rows, out)
	}
	t.Logf("%d compactions killed; %d rows exact", kills, want.Rows)
}

// rows makes n aggregated 5-tuple rows in the 1m bins of hour.
func rows(n int, hour time.Time, seed int) []core.Record {
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	recs := make([]core.Record, n)
	for i := range recs {
		rec := &recs[i]
		rec.SrcAddr = netip.AddrFrom4([4]byte{10, 1, byte(r.IntN(8)), byte(r.IntN(256))})
		rec.DstAddr = netip.AddrFrom4([4]byte{172, 16, 0, byte(r.IntN(100))})
		rec.SrcPort = uint16(32768 + r.IntN(28000))
		rec.DstPort = 443
		rec.Proto = 6
		rec.TCPFlags = 0x1b
		rec.Packets = 1 + uint64(r.IntN(100))
		rec.Bytes = rec.Packets * uint64(40+r.IntN(1460))
		rec.Flows = 1 + uint64(r.IntN(3))
		bin := hour.Add(time.Duration(r.IntN(60)) * time.Minute)
		rec.StampInserted, rec.StampUpdated = bin.UnixNano(), bin.Add(time.Minute).UnixNano()
		rec.Present = core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldTCPFlags | core.FieldProto |
			core.FieldPackets | core.FieldBytes | core.FieldStamps
	}
	return recs
}

// TestCorruptStoreIsNamed: a foreign file where the store should be stops
// the collector with an error naming it.
func TestCorruptStoreIsNamed(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	bad := filepath.Join(dir, "data", "flowline.duckdb")
	writeFile(t, bad, "these are not the bytes you are looking for\n")
	cfg := filepath.Join(dir, "flowline.toml")
	writeFile(t, cfg, storeConfig(freeUDPPort(t), freeTCPPort(t), "1s", ""))
	_, stderr, err := cliErr(dir, nil, "run", "--config", cfg)
	if err == nil || !strings.Contains(stderr, "data/flowline.duckdb") {
		t.Fatalf("run over a foreign file: %v\n%s", err, stderr)
	}
	_, stderr, err = cliErr(dir, nil, "query", "--config", cfg, "SELECT 1")
	if err == nil || !strings.Contains(stderr, "data/flowline.duckdb") {
		t.Fatalf("query over a foreign file: %v\n%s", err, stderr)
	}
}
