package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
)

// tableBytes reports a table's size: information_schema's data + index
// length, and the blocks its .ibd file has allocated on disk (what page
// compression saves shows only there). The table's pages are flushed first.
func tableBytes(tb testing.TB, db *sql.DB, dataDir, database, table string) (logical, allocated int64) {
	tb.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "ANALYZE TABLE "+quoteIdent(database)+"."+quoteIdent(table)); err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES "+quoteIdent(database)+"."+quoteIdent(table)+" FOR EXPORT"); err != nil {
		tb.Fatal(err)
	}
	var st syscall.Stat_t
	path := filepath.Join(dataDir, database, table+".ibd")
	if err := syscall.Stat(path, &st); err != nil {
		tb.Fatalf("stat %s: %v", path, err)
	}
	if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		tb.Fatal(err)
	}
	err = conn.QueryRowContext(ctx, "SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
		database, table).Scan(&logical)
	if err != nil {
		tb.Fatal(err)
	}
	return logical, st.Blocks * 512
}

// BenchmarkBytesPerRow measures bytes per row on disk for the usual 5-tuple
// aggregate of flowgen's traffic (three 10-minute bins): the hot acct table
// (pmacct's v9 layout, optimized columns) and the archive candidates.
//
//	go test -run '^$' -bench BytesPerRow -benchtime 1x ./plugins/outputs/mysql
func BenchmarkBytesPerRow(b *testing.B) {
	s := server(b)
	dataDir := "/tmp/flowline-mariadb/data"
	if d := os.Getenv("FLOWLINE_MARIADB_DIR"); d != "" {
		dataDir = filepath.Join(d, "data")
	}
	if _, err := os.Stat(dataDir); err != nil {
		b.Skipf("data directory %s not readable: sizes need the server's files", dataDir)
	}
	const database = "flowline_size"
	db := s.freshDB(b, database)
	bin := time.Now().Truncate(10 * time.Minute).Add(-time.Hour)
	var all int
	// Hot tables: pmacct's full v9 layout and the optimized 5-tuple layout.
	write := func(name string, optimize bool) {
		o := s.output(database)
		o.Table = name
		if !optimize {
			o.OptimizeClauses, o.Primitives = false, nil
		}
		if err := o.Init(core.NewEnv("test", "")); err != nil {
			b.Fatal(err)
		}
		if err := o.Connect(context.Background()); err != nil {
			b.Fatal(err)
		}
		all = 0
		for i := 0; i < 3; i++ {
			recs := realisticRecords(b, 100_000, int64(10+i), bin.Add(time.Duration(i)*10*time.Minute))
			writeAll(b, o, recs, 5000)
			all += len(recs)
		}
		o.Close(context.Background())
	}
	write("acct_v9", false)
	write("acct", true)
	// The real archive: a life-cycle pass moves acct (a copy) into it.
	if _, err := db.Exec("CREATE TABLE moved LIKE acct"); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO moved SELECT * FROM acct"); err != nil {
		b.Fatal(err)
	}
	o := s.output(database)
	o.Table = "moved"
	o.Lifecycle.CompressAfter = 0
	if err := o.Init(core.NewEnv("test", "")); err != nil {
		b.Fatal(err)
	}
	if err := o.Connect(context.Background()); err != nil {
		b.Fatal(err)
	}
	if _, err := o.Compact(context.Background(), time.Now(), *o.policy); err != nil {
		b.Fatal(err)
	}
	o.Close(context.Background())
	archiveCols := `stamp_inserted DATETIME NOT NULL, ip_src VARBINARY(16) NOT NULL, ip_dst VARBINARY(16) NOT NULL,
		port_src SMALLINT UNSIGNED NOT NULL, port_dst SMALLINT UNSIGNED NOT NULL, tcp_flags SMALLINT UNSIGNED NOT NULL,
		ip_proto TINYINT UNSIGNED NOT NULL, packets BIGINT UNSIGNED NOT NULL, bytes BIGINT UNSIGNED NOT NULL,
		stamp_updated DATETIME, PRIMARY KEY (stamp_inserted, ip_src, ip_dst, port_src, port_dst, ip_proto)`
	fill := "INSERT INTO %s SELECT stamp_inserted, INET6_ATON(ip_src), INET6_ATON(ip_dst), port_src, port_dst, tcp_flags, " +
		protoNumber("ip_proto") + ", packets, bytes, stamp_updated FROM acct ORDER BY stamp_inserted, ip_src, ip_dst, port_src, port_dst, ip_proto"
	variants := []struct{ name, ddl, fill string }{
		{"v9_full_copy_page_compressed", "CREATE TABLE %s LIKE acct_v9", "INSERT INTO %s SELECT * FROM acct_v9"},
		{"compact_plain", "CREATE TABLE %s (" + archiveCols + ") ENGINE=InnoDB", fill},
		{"compact_row_compressed_kbs8", "CREATE TABLE %s (" + archiveCols + ") ENGINE=InnoDB ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8", fill},
		{"compact_row_compressed_kbs4", "CREATE TABLE %s (" + archiveCols + ") ENGINE=InnoDB ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=4", fill},
		{"compact_page_compressed_l6", "CREATE TABLE %s (" + archiveCols + ") ENGINE=InnoDB PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=6", fill},
		{"compact_page_compressed_l9", "CREATE TABLE %s (" + archiveCols + ") ENGINE=InnoDB PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=9", fill},
	}
	for _, v := range variants {
		ddl := fmt.Sprintf(v.ddl, v.name)
		if _, err := db.Exec(ddl); err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
		if v.name == "v9_full_copy_page_compressed" {
			if _, err := db.Exec("ALTER TABLE " + v.name + " PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=6"); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := db.Exec(fmt.Sprintf(v.fill, v.name)); err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
	}
	for _, t := range append([]string{"acct_v9", "acct", "moved_archive"}, func() []string {
		var n []string
		for _, v := range variants {
			n = append(n, v.name)
		}
		return n
	}()...) {
		b.Run(t, func(b *testing.B) {
			logical, allocated := tableBytes(b, db, dataDir, database, t)
			b.ReportMetric(float64(logical)/float64(all), "logical_B/row")
			b.ReportMetric(float64(allocated)/float64(all), "allocated_B/row")
			b.ReportMetric(float64(all), "rows")
		})
	}
}
