package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/plugins/outputs/duckdb"
)

// storeDir makes a store with rows in two 1m bins an hour ago and a config
// that points at it (no collector: the commands open the file).
func storeDir(t *testing.T) (cfg string, packets, bytes uint64) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s, err := duckdb.Open(context.Background(), duckdb.Options{Path: filepath.Join(data, "flowline.duckdb"), Archive: filepath.Join(data, "archive")})
	if err != nil {
		t.Fatal(err)
	}
	// Both bins inside one hourly partition, 50 to 110 minutes ago (a bin
	// at hh:59 and the next one would fall into two archive files).
	bin := time.Now().Truncate(time.Hour).Add(-50 * time.Minute)
	var recs []core.Record
	for i := range 100 {
		r := core.Record{
			SrcAddr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 7)}), DstAddr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 3)}),
			SrcPort: uint16(40000 + i), DstPort: []uint16{443, 53, 80}[i%3], Proto: []uint8{6, 17, 6}[i%3],
			Packets: uint64(i + 1), Bytes: uint64(1000 * (i + 1)), Flows: 1,
			StampInserted: bin.Add(time.Duration(i%2) * time.Minute).UnixNano(), StampUpdated: bin.Add(2 * time.Minute).UnixNano(),
			Present: core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldProto |
				core.FieldPackets | core.FieldBytes | core.FieldStamps,
		}
		packets += r.Packets
		bytes += r.Bytes
		recs = append(recs, r)
	}
	if _, err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	cfg = filepath.Join(dir, "flowline.toml")
	conf := fmt.Sprintf(`[agent]
  data_dir = %q
  metrics_address = ""
[[inputs.netflow]]
[[processors.aggregate]]
  primitives = ["src_host", "dst_host", "src_port", "dst_port", "proto"]
  history = "1m"
[[outputs.duckdb]]
  [outputs.duckdb.lifecycle]
    compress_after = "0s"
`, data)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, packets, bytes
}

func TestQueryFormats(t *testing.T) {
	cfg, packets, bytes := storeDir(t)
	q := "SELECT sum(packets) AS packets, sum(bytes) AS bytes, count(*) AS n FROM flows_all"
	code, out, stderr := runCLI("query", "--config", cfg, "--format", "json", q)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := fmt.Sprintf("[\n  {\"packets\": %d, \"bytes\": %d, \"n\": 100}\n]\n", packets, bytes)
	if out != want {
		t.Fatalf("json:\n%s\nwant\n%s", out, want)
	}
	code, out, _ = runCLI("query", "--config", cfg, "--format", "csv", "SELECT src_host, dst_port, stamp_inserted FROM flows ORDER BY src_port LIMIT 2")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || lines[0] != "src_host,dst_port,stamp_inserted" || !strings.HasPrefix(lines[1], "10.0.0.0,443,") {
		t.Fatalf("csv: exit %d:\n%s", code, out)
	}
	code, out, _ = runCLI("query", "--config", cfg, "SELECT dst_host, sum(bytes) AS bytes FROM flows_all GROUP BY ALL ORDER BY 1")
	if code != 0 || !strings.Contains(out, "192.0.2.0") || !strings.Contains(out, "(3 rows)") || !strings.Contains(out, "--------") {
		t.Fatalf("table:\n%s", out)
	}
	if code, _, stderr := runCLI("query", "--config", cfg, "DROP TABLE flows"); code != 1 || !strings.Contains(stderr, "read-only") {
		t.Fatalf("DROP: exit %d, %s", code, stderr)
	}
	if code, _, _ := runCLI("query", "--config", cfg, "--format", "xml", "SELECT 1"); code != 2 {
		t.Fatalf("--format xml: exit %d", code)
	}
}

func TestTopStatsCompact(t *testing.T) {
	cfg, _, bytes := storeDir(t)
	code, out, stderr := runCLI("top", "--config", cfg, "--by", "dst_port", "--since", "2h", "--format", "json")
	if code != 0 {
		t.Fatalf("top: exit %d: %s", code, stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("top: %v\n%s", err, out)
	}
	var sum float64
	for i, r := range rows {
		sum += r["bytes"].(float64)
		if i > 0 && r["bytes"].(float64) > rows[i-1]["bytes"].(float64) {
			t.Fatalf("top not sorted by bytes: %s", out)
		}
	}
	if uint64(sum) != bytes {
		t.Fatalf("top bytes sum %v, want %d", sum, bytes)
	}
	if code, out, _ := runCLI("top", "--config", cfg, "--by", "dst_host", "--since", "1m"); code != 0 || !strings.Contains(out, "(0 rows)") {
		t.Fatalf("top --since 1m: exit %d\n%s", code, out)
	}
	if code, _, stderr := runCLI("top", "--config", cfg, "--by", "bogus"); code != 2 || !strings.Contains(stderr, "dst_host") {
		t.Fatalf("top --by bogus: exit %d: %s", code, stderr)
	}
	code, out, stderr = runCLI("compact", "--config", cfg, "--now")
	if code != 0 || !strings.Contains(out, "compressed 100 rows into 1 files") {
		t.Fatalf("compact: exit %d: %s%s", code, out, stderr)
	}
	code, out, stderr = runCLI("stats", "--config", cfg, "--format", "json")
	if code != 0 {
		t.Fatalf("stats: exit %d: %s", code, stderr)
	}
	var st duckdb.Stats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.CompressedRows != 100 || st.HotRows != 0 || st.Flows != 100 || st.CompressedBytes == 0 || st.ProjectedBytesPerDay <= 0 {
		t.Fatalf("stats: %+v", st)
	}
	if code, out, _ := runCLI("stats", "--config", cfg); code != 0 || !strings.Contains(out, "per month") {
		t.Fatalf("stats table: exit %d\n%s", code, out)
	}
}

func TestStoreCommandsWithoutStore(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "f.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[agent]\n  data_dir = %q\n  metrics_address = \"\"\n[[inputs.netflow]]\n[[outputs.duckdb]]\n", dir)), 0o644)
	if code, _, stderr := runCLI("query", "--config", cfg, "SELECT 1"); code != 1 || !strings.Contains(stderr, "no store yet") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI("compact", "--config", cfg, "--now"); code != 1 || !strings.Contains(stderr, "lifecycle") {
		t.Fatalf("compact without a lifecycle: exit %d: %s", code, stderr)
	}
	os.WriteFile(cfg, []byte(fmt.Sprintf("[agent]\n  data_dir = %q\n[[inputs.netflow]]\n[[outputs.print]]\n", dir)), 0o644)
	if code, _, stderr := runCLI("top", "--config", cfg); code != 1 || !strings.Contains(stderr, "outputs.duckdb") {
		t.Fatalf("no duckdb output: exit %d: %s", code, stderr)
	}
}

func TestCell(t *testing.T) {
	if cell(big.NewInt(0).Lsh(big.NewInt(1), 70)) != "1180591620717411303424" || cell(nil) != "NULL" || cell(json.Number("12")) != "12" {
		t.Fatal("cell")
	}
}
