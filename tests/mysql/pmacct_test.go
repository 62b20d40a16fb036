package mysql

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/flowgen"
	"github.com/flowline/flowline/internal/testbin"
	"github.com/flowline/flowline/plugins/common/netflow"
)

// nfacctdPath finds nfacctd: under CI it must be installed, elsewhere the
// test skips without it.
func nfacctdPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nfacctd", "/usr/sbin/nfacctd", "/usr/local/sbin/nfacctd"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nfacctd is not installed (apt-get install pmacct); CI must run the MySQL drop-in comparison")
	}
	t.Skip("nfacctd is not installed (apt-get install pmacct)")
	return ""
}

// pmacctV9Optimized is pmacct's v9 acct table cut down to the 5-tuple
// aggregate, as sql_optimize_clauses users build it (the v9 column types,
// the v9 key order).
const pmacctV9Optimized = `CREATE TABLE acct (
	ip_src CHAR(45) NOT NULL,
	ip_dst CHAR(45) NOT NULL,
	port_src INT(2) UNSIGNED NOT NULL,
	port_dst INT(2) UNSIGNED NOT NULL,
	tcp_flags INT(4) UNSIGNED NOT NULL,
	ip_proto CHAR(6) NOT NULL,
	packets INT UNSIGNED NOT NULL,
	bytes BIGINT UNSIGNED NOT NULL,
	stamp_inserted DATETIME NOT NULL,
	stamp_updated DATETIME,
	PRIMARY KEY (ip_src, ip_dst, port_src, port_dst, ip_proto, stamp_inserted)
)`

// pmacctV9 is sql/pmacct-create-db_v9.mysql's table (named acct).
const pmacctV9 = `CREATE TABLE acct (
	tag INT(4) UNSIGNED NOT NULL,
	class_id CHAR(16) NOT NULL,
	mac_src CHAR(17) NOT NULL,
	mac_dst CHAR(17) NOT NULL,
	vlan INT(2) UNSIGNED NOT NULL,
	as_src INT(4) UNSIGNED NOT NULL,
	as_dst INT(4) UNSIGNED NOT NULL,
	ip_src CHAR(45) NOT NULL,
	ip_dst CHAR(45) NOT NULL,
	port_src INT(2) UNSIGNED NOT NULL,
	port_dst INT(2) UNSIGNED NOT NULL,
	tcp_flags INT(4) UNSIGNED NOT NULL,
	ip_proto CHAR(6) NOT NULL,
	tos INT(4) UNSIGNED NOT NULL,
	packets INT UNSIGNED NOT NULL,
	bytes BIGINT UNSIGNED NOT NULL,
	flows INT UNSIGNED NOT NULL,
	stamp_inserted DATETIME NOT NULL,
	stamp_updated DATETIME,
	PRIMARY KEY (tag, class_id, mac_src, mac_dst, vlan, as_src, as_dst, ip_src, ip_dst, port_src, port_dst, ip_proto, tos, stamp_inserted)
)`

// TestDropInForNfacctd sends the same NetFlow v9 datagrams to nfacctd
// (plugins: mysql, sql_table_version 9) and to flowline, each writing its own
// database on the test server, and compares the acct rows column by column
// (all but stamp_updated).
func TestDropInForNfacctd(t *testing.T) {
	s := testServer(t)
	nfacctd := nfacctdPath(t)
	for _, tc := range []struct {
		name     string
		optimize bool
		schema   string
	}{
		{"optimize_clauses", true, pmacctV9Optimized},
		{"v9_all_columns", false, pmacctV9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compareWithNfacctd(t, s, nfacctd, tc.optimize, tc.schema)
		})
	}
}

func compareWithNfacctd(t *testing.T, s server, nfacctd string, optimize bool, schema string) {
	nfDB, flDB := "pmacct_cmp", "flowline_cmp"
	s.dropDB(t, nfDB)
	s.dropDB(t, flDB)
	root := s.open(t, "")
	for _, q := range []string{"CREATE DATABASE " + nfDB, "USE " + nfDB} {
		if _, err := root.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.open(t, nfDB).Exec(schema); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	agg := "src_host, dst_host, src_port, dst_port, tcpflags, proto"

	// nfacctd.
	nfPort := freeUDPPort(t)
	conf := []string{
		"daemonize: false",
		"nfacctd_ip: 127.0.0.1",
		fmt.Sprintf("nfacctd_port: %d", nfPort),
		"nfacctd_time_new: true",
		"plugins: mysql[m]",
		"aggregate[m]: " + agg,
		"sql_host[m]: 127.0.0.1",
		fmt.Sprintf("sql_port[m]: %d", s.port),
		"sql_user[m]: " + s.user,
		"sql_passwd[m]: " + s.password,
		"sql_db[m]: " + nfDB,
		"sql_table[m]: acct",
		"sql_table_version[m]: 9",
		fmt.Sprintf("sql_optimize_clauses[m]: %v", optimize),
		"sql_history[m]: 1m",
		"sql_history_roundoff[m]: m",
		"sql_refresh_time[m]: 2",
		"logfile: " + filepath.Join(dir, "nfacctd.log"),
	}
	confPath := filepath.Join(dir, "nfacctd.conf")
	if err := os.WriteFile(confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nf := exec.Command(nfacctd, "-f", confPath)
	nf.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var nfOut testbin.LockedBuffer
	nf.Stdout, nf.Stderr = &nfOut, &nfOut
	if err := nf.Start(); err != nil {
		t.Fatal(err)
	}
	nfDone := make(chan error, 1)
	go func() { nfDone <- nf.Wait() }()
	stopNf := func() {
		_ = syscall.Kill(-nf.Process.Pid, syscall.SIGINT)
		select {
		case <-nfDone:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-nf.Process.Pid, syscall.SIGKILL)
			<-nfDone
		}
		// Let the forked plugin of the group finish its last write.
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if syscall.Kill(-nf.Process.Pid, 0) != nil {
				break
			}
		}
		nfDone <- nil
	}
	t.Cleanup(func() {
		select {
		case <-nfDone:
		default:
			_ = syscall.Kill(-nf.Process.Pid, syscall.SIGKILL)
		}
	})
	waitBound(t, nfPort, nfDone, &nfOut)

	// flowline.
	flPort := freeUDPPort(t)
	extra := ""
	out := s.mysqlTOML(flDB, "")
	if !optimize {
		out = strings.Replace(out, "optimize_clauses = true", "optimize_clauses = false", 1)
		extra = "\n  ## all v9 columns"
	}
	fl, err := runFlowline(t, dir, collectorTOML(dir, flPort, "", out+extra), s)
	if err != nil {
		t.Fatal(err)
	}

	// The same datagrams to both, inside one minute bin, over two refreshes
	// (so that both update rows they inserted).
	if sec := time.Now().Second(); sec > 40 {
		time.Sleep(time.Duration(61-sec) * time.Second)
	}
	g, err := flowgen.NewGenerator(flowgen.Config{Version: 9, Flows: 6000, Seed: 33, HostPool: 50, SourceIDs: 1})
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for {
		p, kind, _ := g.Next()
		if kind == flowgen.PacketNone {
			break
		}
		pkts = append(pkts, append([]byte(nil), p...))
	}
	half := len(pkts) / 2
	sendTo(t, nfPort, flPort, pkts[:half])
	time.Sleep(4500 * time.Millisecond)
	sendTo(t, nfPort, flPort, pkts[half:])
	time.Sleep(4500 * time.Millisecond)
	stopNf()
	fl.Stop()

	cols := "ip_src, ip_dst, port_src, port_dst, tcp_flags, ip_proto, packets, bytes, stamp_inserted"
	if !optimize {
		cols = "tag, class_id, mac_src, mac_dst, vlan, as_src, as_dst, ip_src, ip_dst, port_src, port_dst, tcp_flags, ip_proto, tos, packets, bytes, flows, stamp_inserted"
	}
	want := dump(t, s, nfDB, cols)
	got := dump(t, s, flDB, cols)
	if len(want) < 20 {
		b, _ := os.ReadFile(filepath.Join(dir, "nfacctd.log"))
		t.Fatalf("nfacctd wrote %d rows only\n%s\n%s", len(want), b, nfOut.String())
	}
	// nfacctd miscounts now and then: a run had it add a 1-packet flow
	// to a row where flowgen sent none. A row on which the two differ is
	// judged by the flows sent: it is excused when Flowline's row holds
	// exactly their packets and bytes and nfacctd's does not.
	truth := sentTotals(t, pkts)
	var lacks, has []string
	for k := range want {
		if !got[k] {
			lacks = append(lacks, k)
		}
	}
	for k := range got {
		if !want[k] {
			has = append(has, k)
		}
	}
	lacks, has = excuseNfacctd(t, cols, lacks, has, truth)
	missing, extraRows := len(lacks), len(has)
	for i, k := range lacks {
		if i < 10 {
			t.Errorf("flowline lacks nfacctd's row %s", k)
		}
	}
	for i, k := range has {
		if i < 10 {
			t.Errorf("flowline has a row nfacctd does not: %s", k)
		}
	}
	t.Logf("%d rows from nfacctd, %d from flowline; %d missing, %d extra (columns %s)", len(want), len(got), missing, extraRows, cols)
	if t.Failed() {
		t.Logf("flowline log:\n%s", fl.Log())
	}
}

func sendTo(t *testing.T, p1, p2 int, pkts [][]byte) {
	t.Helper()
	for _, port := range []int{p1, p2} {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			if _, err := c.Write(p); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		c.Close()
	}
}

// counts are the packets and bytes flowgen sent for one address and port
// pair.
type counts struct{ packets, bytes uint64 }

// sentTotals decodes the datagrams sent and sums packets and bytes per
// "ip_src|ip_dst|port_src|port_dst".
func sentTotals(t *testing.T, pkts [][]byte) map[string]counts {
	t.Helper()
	d := netflow.NewDecoder(netflow.DecoderConfig{})
	exp := netip.MustParseAddrPort("127.0.0.1:2055")
	sums := map[string]counts{}
	for _, p := range pkts {
		b := core.NewBatch()
		if _, err := d.Decode(core.Packet{Data: p, Exporter: exp}, b); err != nil {
			t.Fatal(err)
		}
		for i := range b.Records {
			r := &b.Records[i]
			k := fmt.Sprintf("%s|%s|%d|%d", r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort)
			c := sums[k]
			sums[k] = counts{c.packets + r.Packets, c.bytes + r.Bytes}
		}
		b.Release()
	}
	return sums
}

// excuseNfacctd drops from lacks (nfacctd's rows Flowline lacks) and has
// (Flowline's rows nfacctd lacks) each pair of rows of one address and port
// pair where Flowline's packets and bytes are what was sent and nfacctd's
// are not, logging them. Rows it cannot read (a NULL column shifts
// CONCAT_WS) are left to fail.
func excuseNfacctd(t *testing.T, cols string, lacks, has []string, truth map[string]counts) ([]string, []string) {
	t.Helper()
	names := strings.Split(cols, ", ")
	at := map[string]int{}
	for i, n := range names {
		at[n] = i
	}
	parse := func(row string) (string, counts, bool) {
		f := strings.Split(row, "|")
		if len(f) != len(names) {
			return "", counts{}, false
		}
		var c counts
		_, err1 := fmt.Sscan(f[at["packets"]], &c.packets)
		_, err2 := fmt.Sscan(f[at["bytes"]], &c.bytes)
		return strings.Join([]string{f[at["ip_src"]], f[at["ip_dst"]], f[at["port_src"]], f[at["port_dst"]]}, "|"), c, err1 == nil && err2 == nil
	}
	var keepLacks []string
	for _, l := range lacks {
		lk, lc, ok := parse(l)
		j := -1
		for i, h := range has {
			if hk, hc, hok := parse(h); ok && hok && hk == lk && hc == truth[hk] && lc != truth[lk] {
				j = i
				break
			}
		}
		if j < 0 {
			keepLacks = append(keepLacks, l)
			continue
		}
		t.Logf("nfacctd miscounted %s: %+v where flowgen sent %+v, as Flowline stored (%s)", lk, lc, truth[lk], has[j])
		has = append(has[:j], has[j+1:]...)
	}
	return keepLacks, has
}

// dump reads every row of db.acct as one string per row.
func dump(t *testing.T, s server, db, cols string) map[string]bool {
	t.Helper()
	rows, err := s.open(t, db).Query("SELECT CONCAT_WS('|', " + cols + ") FROM acct")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		if out[r] {
			t.Errorf("%s: duplicate row %s", db, r)
		}
		out[r] = true
	}
	return out
}

// waitBound waits until nfacctd has bound its UDP port.
func waitBound(t *testing.T, port int, done chan error, out *testbin.LockedBuffer) {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("nfacctd exited early: %v\n%s", err, out.String())
		default:
		}
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			time.Sleep(300 * time.Millisecond) // the plugin process connects too
			return
		}
		c.Close()
	}
	t.Fatalf("nfacctd did not bind udp %d\n%s", port, out.String())
}

// TestExcuseNfacctd checks the referee on the rows of a failed run: nfacctd
// counted one flow too many where Flowline stored what was sent; the
// reverse is not excused.
func TestExcuseNfacctd(t *testing.T) {
	cols := "ip_src, ip_dst, port_src, port_dst, tcp_flags, ip_proto, packets, bytes, stamp_inserted"
	nf := "10.1.0.48|172.16.0.2|56594|5432|31|tcp|56|36752|2026-12-05 01:41:00"
	fl := "10.1.0.48|172.16.0.2|56594|5432|31|tcp|55|36639|2026-12-05 01:41:00"
	truth := map[string]counts{"10.1.0.48|172.16.0.2|56594|5432": {55, 36639}}
	if lacks, has := excuseNfacctd(t, cols, []string{nf}, []string{fl}, truth); len(lacks)+len(has) != 0 {
		t.Errorf("nfacctd's miscount not excused: %v %v", lacks, has)
	}
	if lacks, has := excuseNfacctd(t, cols, []string{fl}, []string{nf}, truth); len(lacks) != 1 || len(has) != 1 {
		t.Errorf("Flowline's miscount excused: %v %v", lacks, has)
	}
}
