package mysql

import (
	"bufio"
	"context"
	"database/sql"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/plugins/common/netflow"
)

// testServer is the MariaDB scripts/mariadb.sh runs for the tests.
type testServer struct {
	host, user, password string
	port                 int
	dsn                  string
}

// server finds the test database from scripts/mariadb.sh's env file: under
// CI=true its absence fails the test, elsewhere it skips (as does -short).
func server(tb testing.TB) testServer {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test: needs MariaDB (scripts/mariadb.sh start)")
	}
	dir := os.Getenv("FLOWLINE_MARIADB_DIR")
	if dir == "" {
		dir = "/tmp/flowline-mariadb"
	}
	env := map[string]string{}
	if f, err := os.Open(filepath.Join(dir, "env")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				env[k] = v
			}
		}
		f.Close()
	}
	if v := os.Getenv("FLOWLINE_TEST_MYSQL_DSN"); v != "" {
		env["FLOWLINE_TEST_MYSQL_DSN"] = v
	}
	s := testServer{dsn: env["FLOWLINE_TEST_MYSQL_DSN"], host: env["FLOWLINE_TEST_MYSQL_HOST"],
		user: env["FLOWLINE_TEST_MYSQL_USER"], password: env["FLOWLINE_TEST_MYSQL_PASSWORD"]}
	for _, c := range env["FLOWLINE_TEST_MYSQL_PORT"] {
		s.port = s.port*10 + int(c-'0')
	}
	fail := func(msg string) {
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg + " (CI must run the MySQL tests: scripts/mariadb.sh start)")
		}
		tb.Skip(msg + " (scripts/mariadb.sh start)")
	}
	if s.dsn == "" {
		fail("no test MariaDB")
	}
	db := s.open(tb, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		fail("test MariaDB not answering: " + err.Error())
	}
	return s
}

func (s testServer) open(tb testing.TB, database string) *sql.DB {
	tb.Helper()
	c, err := driver.ParseDSN(s.dsn)
	if err != nil {
		tb.Fatal(err)
	}
	c.DBName = database
	conn, err := driver.NewConnector(c)
	if err != nil {
		tb.Fatal(err)
	}
	db := sql.OpenDB(conn)
	tb.Cleanup(func() { db.Close() })
	return db
}

// freshDB drops and creates a database named for the test.
func (s testServer) freshDB(tb testing.TB, name string) *sql.DB {
	tb.Helper()
	db := s.open(tb, "")
	for _, q := range []string{"DROP DATABASE IF EXISTS " + quoteIdent(name), "CREATE DATABASE " + quoteIdent(name)} {
		if _, err := db.Exec(q); err != nil {
			tb.Fatal(err)
		}
	}
	return s.open(tb, name)
}

func (s testServer) output(database string) *MySQL {
	o := New()
	o.Host, o.Port, o.User, o.Password, o.Database = s.host, s.port, s.user, s.password, database
	o.CreateTable = true
	o.OptimizeClauses = true
	o.Primitives = []string{"src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"}
	return o
}

// realisticRecords decodes flowgen's traffic and aggregates it by the 5-tuple
// (plus tcp flags OR-ed and proto) into one bin, as processors.aggregate does.
func realisticRecords(tb testing.TB, flows uint64, seed int64, bin time.Time) []core.Record {
	tb.Helper()
	g, err := flowgen.NewGenerator(flowgen.Config{Version: 9, Flows: flows, Seed: seed, HostPool: 20000})
	if err != nil {
		tb.Fatal(err)
	}
	dec := netflow.NewDecoder(netflow.DecoderConfig{})
	type key struct {
		src, dst netip.Addr
		sp, dp   uint16
		proto    uint8
	}
	agg := map[key]*core.Record{}
	var order []key
	exp := netip.MustParseAddrPort("192.0.2.1:2055")
	for {
		pkt, kind, _ := g.Next()
		if kind == flowgen.PacketNone {
			break
		}
		b := core.NewBatch()
		if _, err := dec.Decode(core.Packet{Data: pkt, Exporter: exp, Received: bin.UnixNano()}, b); err != nil {
			tb.Fatal(err)
		}
		for i := range b.Records {
			r := &b.Records[i]
			if r.Flags&core.FlagOptions != 0 {
				continue
			}
			k := key{r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, r.Proto}
			a := agg[k]
			if a == nil {
				a = &core.Record{SrcAddr: r.SrcAddr, DstAddr: r.DstAddr, SrcPort: r.SrcPort, DstPort: r.DstPort, Proto: r.Proto,
					Present: core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldProto |
						core.FieldTCPFlags | core.FieldPackets | core.FieldBytes | core.FieldStamps,
					StampInserted: bin.UnixNano(), StampUpdated: bin.Add(time.Minute).UnixNano()}
				agg[k] = a
				order = append(order, k)
			}
			a.Packets += r.Packets
			a.Bytes += r.Bytes
			a.TCPFlags |= r.TCPFlags
		}
		b.Release()
	}
	out := make([]core.Record, 0, len(order))
	for _, k := range order {
		out = append(out, *agg[k])
	}
	return out
}

// writeAll writes recs in batches of n and waits until the output has
// committed everything.
func writeAll(tb testing.TB, o *MySQL, recs []core.Record, n int) {
	tb.Helper()
	for i := 0; i < len(recs); i += n {
		b := core.NewBatch()
		b.Records = append(b.Records[:0], recs[i:min(i+n, len(recs))]...)
		if err := o.Write(context.Background(), b); err != nil {
			tb.Fatal(err)
		}
		b.Release()
	}
	waitDrained(tb, o, 2*time.Minute)
}

func waitDrained(tb testing.TB, o *MySQL, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !o.buf.Empty() {
		if time.Now().After(deadline) {
			tb.Fatalf("buffer not drained within %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sums(tb testing.TB, db *sql.DB, table string) (rows, packets, bytes uint64) {
	tb.Helper()
	err := db.QueryRow("SELECT COUNT(*), COALESCE(SUM(packets),0), COALESCE(SUM(bytes),0) FROM "+table).Scan(&rows, &packets, &bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return
}

func recSums(recs []core.Record) (packets, bytes uint64) {
	for i := range recs {
		packets += recs[i].Packets
		bytes += recs[i].Bytes
	}
	return
}
