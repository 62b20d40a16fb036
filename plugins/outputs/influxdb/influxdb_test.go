package influxdb

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/internal/influxtest"
)

var aggPrimitives = []string{"peer_src_ip", "src_host", "dst_host", "src_port", "dst_port", "proto", "src_as"}

// refresh is what an aggregate with history emits at one refresh: n
// records spread over the bins, keys repeating across refreshes.
func refresh(n int, bins []int64, seed int) []core.Record {
	recs := make([]core.Record, n)
	for i := range recs {
		r := &recs[i]
		r.Exporter = netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%3)})
		r.SrcAddr = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		r.DstAddr = netip.AddrFrom4([4]byte{10, 1, 0, byte(i % 7)})
		r.SrcPort, r.DstPort, r.Proto = uint16(1024+i), 443, []uint8{6, 17}[i%2]
		r.SrcAS = uint32(64500 + i%4)
		r.Packets, r.Bytes, r.Flows = uint64(1+(i+seed)%13), uint64(100*(1+(i*seed)%17)), 1
		r.StampInserted, r.StampUpdated = bins[i%len(bins)], time.Now().UnixNano()
		r.Present = core.FieldStamps
	}
	return recs
}

func influxNum(v any) float64 {
	f, _ := v.(float64)
	return f
}

func batchOf(recs []core.Record) *core.Batch {
	b := core.NewBatch()
	b.Records = append(b.Records[:0], recs...)
	return b
}

func sum(recs []core.Record) (p, b uint64) {
	for i := range recs {
		p += recs[i].Packets
		b += recs[i].Bytes
	}
	return
}

// logTo returns an environment whose log goes to buf.
func logTo(name, dataDir string, primitives []string, buf io.Writer) *core.Env {
	env := core.NewEnv(name, dataDir)
	env.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env.Primitives = primitives
	return env
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newOutput(t *testing.T, url, token, bucket string, env *core.Env, set func(*InfluxDB)) *InfluxDB {
	t.Helper()
	o := New()
	o.URL, o.Token, o.Bucket = url, token, bucket
	if set != nil {
		set(o)
	}
	if err := o.Init(env); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return o
}

// drained waits until nothing waits in the spool.
func drained(t *testing.T, o *InfluxDB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !o.buf.Empty() {
		if time.Now().After(deadline) {
			t.Fatalf("points not sent within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func closeOutput(t *testing.T, o *InfluxDB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestExactUnderOverwrite: five refreshes of the same bins, each written as
// it comes, into a real InfluxDB 1.8: the sums equal what was sent, and
// there is one point per tag set and bin.
func TestExactUnderOverwrite(t *testing.T) {
	s := influxtest.InfluxDB(t)
	s.CreateDB(t, "flowline_unit_exact")
	env := core.NewEnv("influxdb", t.TempDir())
	env.Primitives = aggPrimitives
	o := newOutput(t, s.URL, s.Token, "flowline_unit_exact/autogen", env, func(o *InfluxDB) { o.BatchSize = 7 })
	bin := time.Now().Truncate(time.Minute).UnixNano()
	// Bins before the output started (written at an offset timestamp) and
	// after (at the bin start).
	bins := []int64{bin - 3*int64(time.Minute), bin - 2*int64(time.Minute), bin - int64(time.Minute), bin, bin + int64(time.Minute)}
	var wp, wb uint64
	for k := 0; k < 5; k++ {
		recs := refresh(500, bins, k)
		p, b := sum(recs)
		wp, wb = wp+p, wb+b
		o.Write(context.Background(), batchOf(recs))
	}
	drained(t, o, 30*time.Second)
	closeOutput(t, o)
	p, b, points := s.Sums(t, "flowline_unit_exact", "flows")
	if p != wp || b != wb {
		t.Fatalf("InfluxDB holds %d packets, %d bytes; %d, %d were sent", p, b, wp, wb)
	}
	// Default tags: exporter, proto, src_as (i%3, i%2, i%4: 12 tag sets).
	want := map[string]bool{}
	for i := range 500 {
		want[fmt.Sprint(i%3, i%2, i%4, bins[i%len(bins)])] = true
	}
	if points != uint64(len(want)) {
		t.Fatalf("%d points, want one per tag set and bin (%d)", points, len(want))
	}
	series := s.Query(t, "flowline_unit_exact", `SHOW SERIES FROM "flows"`)
	if len(series) != 1 || len(series[0].Values) != 12 {
		t.Fatalf("series: %+v", series)
	}
	if !strings.Contains(fmt.Sprint(series[0].Values), "flows,exporter=192.0.2.1,proto=6,src_as=64500") {
		t.Fatalf("series keys: %v", series[0].Values)
	}
	at := s.Query(t, "flowline_unit_exact", fmt.Sprintf(`SELECT count(packets) FROM "flows" WHERE time = %d`, bins[4]))
	if len(at) != 1 || influxNum(at[0].Values[0][1]) == 0 {
		t.Fatalf("no points at the start of a bin that began after the output: %+v", at)
	}
}

// TestRestartKeepsTotals: the server is away; Close spools the points and
// saves the running totals; the next process sends the spool and continues
// the totals of the open bins, so the sums stay exact.
func TestRestartKeepsTotals(t *testing.T) {
	s := influxtest.InfluxDB(t)
	s.CreateDB(t, "flowline_unit_restart")
	dataDir := t.TempDir()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	away := "http://" + l.Addr().String()
	l.Close()
	bin := time.Now().Truncate(time.Minute).UnixNano()
	bins := []int64{bin, bin - int64(time.Minute)}
	env := func() *core.Env {
		e := core.NewEnv("influxdb", dataDir)
		e.Primitives = aggPrimitives
		return e
	}
	down := newOutput(t, away, s.Token, "flowline_unit_restart", env(), func(o *InfluxDB) { o.BufferPoints = 10; o.Timeout = core.Duration(time.Second) })
	var wp, wb uint64
	for k := 0; k < 3; k++ {
		recs := refresh(300, bins, k)
		p, b := sum(recs)
		wp, wb = wp+p, wb+b
		down.Write(context.Background(), batchOf(recs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	down.Close(ctx)
	cancel()
	dir := filepath.Join(dataDir, "influxdb-influxdb")
	if files, _ := filepath.Glob(filepath.Join(dir, "*.points")); len(files) == 0 {
		t.Fatal("no spool files after closing with the server away")
	}
	if _, err := os.Stat(filepath.Join(dir, "totals")); err != nil {
		t.Fatalf("running totals not saved: %v", err)
	}
	up := newOutput(t, s.URL, s.Token, "flowline_unit_restart", env(), nil)
	recs := refresh(300, bins, 9) // a refresh of the same bins after the restart
	p, b := sum(recs)
	wp, wb = wp+p, wb+b
	up.Write(context.Background(), batchOf(recs))
	drained(t, up, 30*time.Second)
	closeOutput(t, up)
	if gp, gb, _ := s.Sums(t, "flowline_unit_restart", "flows"); gp != wp || gb != wb {
		t.Fatalf("after the restart: %d packets, %d bytes; %d, %d were sent", gp, gb, wp, wb)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.points")); len(files) != 0 {
		t.Fatalf("spool files left: %v", files)
	}
}

// TestLateAndRestartedBinsAdd: bins whose totals were forgotten, and bins
// a process without saved totals meets (after a crash), are written at an
// offset timestamp and add up instead of overwriting.
func TestLateAndRestartedBinsAdd(t *testing.T) {
	s := influxtest.InfluxDB(t)
	s.CreateDB(t, "flowline_unit_late")
	bin := time.Now().Truncate(time.Minute).UnixNano()
	old := bin - 10*int64(time.Minute)
	env := func() *core.Env {
		e := core.NewEnv("influxdb", "") // no data dir: nothing survives, as after a crash
		e.Primitives = aggPrimitives
		return e
	}
	o := newOutput(t, s.URL, s.Token, "flowline_unit_late", env(), func(o *InfluxDB) { o.KeepTotals = core.Duration(5 * time.Minute) })
	var wp, wb uint64
	write := func(o *InfluxDB, recs []core.Record) {
		p, b := sum(recs)
		wp, wb = wp+p, wb+b
		o.Write(context.Background(), batchOf(recs))
	}
	write(o, refresh(100, []int64{old}, 1))
	write(o, refresh(100, []int64{bin}, 2)) // forgets the old bin's totals
	write(o, refresh(100, []int64{old}, 3)) // late
	drained(t, o, 30*time.Second)
	if late := testutil.ToFloat64(o.m.late); late != 100 {
		t.Fatalf("late records %v, want 100", late)
	}
	closeOutput(t, o)
	time.Sleep(1100 * time.Millisecond) // the next process starts in another second
	o2 := newOutput(t, s.URL, s.Token, "flowline_unit_late", env(), nil)
	write(o2, refresh(100, []int64{bin}, 4)) // the same bin, its totals unknown
	drained(t, o2, 30*time.Second)
	closeOutput(t, o2)
	if gp, gb, _ := s.Sums(t, "flowline_unit_late", "flows"); gp != wp || gb != wb {
		t.Fatalf("%d packets, %d bytes; %d, %d were sent", gp, gb, wp, wb)
	}
}

// TestCrashedRunUsesOffsets: a process that stopped without Close (a
// crash) leaves its marker; the next one cannot know the totals of bins
// that began before it started, so its points for them go to an offset
// timestamp and add up. A first start needs no offset.
func TestCrashedRunUsesOffsets(t *testing.T) {
	s := influxtest.InfluxDB(t)
	s.CreateDB(t, "flowline_unit_crash")
	dataDir := t.TempDir()
	env := func() *core.Env {
		e := core.NewEnv("influxdb", dataDir)
		e.Primitives = aggPrimitives
		return e
	}
	bin := time.Now().Truncate(time.Minute).UnixNano()
	first := newOutput(t, s.URL, s.Token, "flowline_unit_crash", env(), nil)
	if first.pastUnknown {
		t.Fatal("a first start treats earlier bins as unknown")
	}
	recs := refresh(200, []int64{bin}, 1)
	wp, wb := sum(recs)
	first.Write(context.Background(), batchOf(recs))
	drained(t, first, 30*time.Second)
	first.cancelRun() // the process dies: no Close, no saved totals
	<-first.done

	second := newOutput(t, s.URL, s.Token, "flowline_unit_crash", env(), nil)
	if !second.pastUnknown {
		t.Fatal("the marker of the crashed run was not seen")
	}
	recs = refresh(200, []int64{bin}, 2)
	p, b := sum(recs)
	wp, wb = wp+p, wb+b
	second.Write(context.Background(), batchOf(recs))
	drained(t, second, 30*time.Second)
	closeOutput(t, second)
	if gp, gb, _ := s.Sums(t, "flowline_unit_crash", "flows"); gp != wp || gb != wb {
		t.Fatalf("after a crash: %d packets, %d bytes; %d, %d were sent", gp, gb, wp, wb)
	}
}

// TestUnaggregatedPointsDoNotCollide: without an aggregate every Write's
// records are summed per tag set and each sum gets a timestamp of its own.
func TestUnaggregatedPointsDoNotCollide(t *testing.T) {
	s := influxtest.InfluxDB(t)
	s.CreateDB(t, "flowline_unit_raw")
	o := newOutput(t, s.URL, s.Token, "flowline_unit_raw", core.NewEnv("influxdb", t.TempDir()), nil)
	var wp, wb uint64
	for k := 0; k < 20; k++ {
		recs := refresh(50, []int64{0}, k)
		p, b := sum(recs)
		wp, wb = wp+p, wb+b
		o.Write(context.Background(), batchOf(recs))
	}
	drained(t, o, 30*time.Second)
	closeOutput(t, o)
	if gp, gb, _ := s.Sums(t, "flowline_unit_raw", "flows"); gp != wp || gb != wb {
		t.Fatalf("%d packets, %d bytes; %d, %d were sent", gp, gb, wp, wb)
	}
}

// fake is an httptest server that answers write requests from a script and
// records the bodies of the requests it accepted.
type fake struct {
	mu       sync.Mutex
	answers  []func(w http.ResponseWriter, lines int) bool // true: accepted
	times    []time.Time
	accepted []string
	srv      *httptest.Server
}

func newFake(t *testing.T, answers ...func(w http.ResponseWriter, lines int) bool) *fake {
	f := &fake{answers: answers}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, "bad gzip", 400)
				return
			}
			body = zr
		}
		data, _ := io.ReadAll(body)
		if r.URL.Path != "/api/v2/write" || r.URL.Query().Get("bucket") != "db/rp" || r.Header.Get("Authorization") != "Token u:p" {
			http.Error(w, "unexpected request "+r.URL.String(), 500)
			return
		}
		lines := strings.Count(string(data), "\n")
		if lines == 0 { // the start-up check
			w.WriteHeader(204)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.times = append(f.times, time.Now())
		answer := func(w http.ResponseWriter, lines int) bool { w.WriteHeader(204); return true }
		if len(f.answers) > 0 {
			answer, f.answers = f.answers[0], f.answers[1:]
		}
		if answer(w, lines) {
			f.accepted = append(f.accepted, string(data))
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func status(code int, header, body string) func(w http.ResponseWriter, lines int) bool {
	return func(w http.ResponseWriter, _ int) bool {
		if k, v, ok := strings.Cut(header, ": "); ok {
			w.Header().Set(k, v)
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
		return code/100 == 2
	}
}

// TestRetryAfterThen503ThenWritten: 429 with Retry-After: 2, then 503, then
// 204: the points are written once, after the waits.
func TestRetryAfterThen503ThenWritten(t *testing.T) {
	f := newFake(t, status(429, "Retry-After: 2", "slow down"), status(503, "Retry-After: 1", "busy"))
	env := core.NewEnv("influxdb", "")
	env.Primitives = aggPrimitives
	o := newOutput(t, f.srv.URL, "u:p", "db/rp", env, nil)
	start := time.Now()
	o.Write(context.Background(), batchOf(refresh(40, []int64{time.Now().Truncate(time.Minute).UnixNano()}, 1)))
	drained(t, o, 20*time.Second)
	closeOutput(t, o)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.times) != 3 || len(f.accepted) != 1 {
		t.Fatalf("%d requests, %d accepted; want 3 and 1", len(f.times), len(f.accepted))
	}
	if d := f.times[1].Sub(f.times[0]); d < 2*time.Second {
		t.Fatalf("retried %v after the 429, want >= Retry-After: 2", d)
	}
	if d := f.times[2].Sub(f.times[1]); d < time.Second {
		t.Fatalf("retried %v after the 503, want >= Retry-After: 1", d)
	}
	if n := strings.Count(f.accepted[0], "\n"); n != 12 { // exporter i%3, proto i%2, AS i%4: 12 tag sets
		t.Fatalf("%d points written, want 12", n)
	}
	if w := testutil.ToFloat64(o.m.written); w != 12 || testutil.ToFloat64(o.m.retries) != 2 {
		t.Fatalf("written %v, retries %v", w, testutil.ToFloat64(o.m.retries))
	}
	t.Logf("written %v after %v", f.times[2].Sub(start), len(f.times))
}

// TestBadRequestCountedAndLogged: 400 with the server's message: counted as
// rejected, logged with that message, not retried; the next points flow.
func TestBadRequestCountedAndLogged(t *testing.T) {
	f := newFake(t, status(400, "Content-Type: application/json", `{"code":"invalid","message":"unable to parse 'flows,x': missing fields"}`))
	var log syncBuf
	env := logTo("influxdb", "", aggPrimitives, &log)
	o := newOutput(t, f.srv.URL, "u:p", "db/rp", env, nil)
	bin := time.Now().Truncate(time.Minute).UnixNano()
	o.Write(context.Background(), batchOf(refresh(40, []int64{bin}, 1)))
	drained(t, o, 10*time.Second)
	o.Write(context.Background(), batchOf(refresh(40, []int64{bin}, 2)))
	drained(t, o, 10*time.Second)
	closeOutput(t, o)
	if r := testutil.ToFloat64(o.m.rejected); r != 12 {
		t.Fatalf("rejected %v points, want 12", r)
	}
	if !strings.Contains(log.String(), "missing fields") || !strings.Contains(log.String(), "status=400") {
		t.Fatalf("the log does not carry the server's message:\n%s", log.String())
	}
	if len(f.times) != 2 || len(f.accepted) != 1 {
		t.Fatalf("%d requests, %d accepted: the bad request was retried or the next one lost", len(f.times), len(f.accepted))
	}
}

// TestPartialWriteCountsDropped: InfluxDB 1.8's partial write names how many
// points it dropped; only those count as rejected.
func TestPartialWriteCountsDropped(t *testing.T) {
	if n := rejectedCount(`partial write: field type conflict: input field "packets" on measurement "flows" is type float, already exists as type integer dropped=3`, 10); n != 3 {
		t.Fatalf("rejected %d, want 3", n)
	}
	if n := rejectedCount("unable to parse", 10); n != 10 {
		t.Fatalf("rejected %d, want 10", n)
	}
}

// TestTooLargeSplits: 413 for requests over 5 points: the output halves
// them until they pass, and every point arrives once.
func TestTooLargeSplits(t *testing.T) {
	var answers []func(http.ResponseWriter, int) bool
	for range 100 {
		answers = append(answers, func(w http.ResponseWriter, lines int) bool {
			if lines > 5 {
				w.WriteHeader(413)
				return false
			}
			w.WriteHeader(204)
			return true
		})
	}
	f := newFake(t, answers...)
	env := core.NewEnv("influxdb", "")
	env.Primitives = aggPrimitives
	o := newOutput(t, f.srv.URL, "u:p", "db/rp", env, func(o *InfluxDB) { o.ContentEncoding = "identity" })
	o.Write(context.Background(), batchOf(refresh(40, []int64{time.Now().Truncate(time.Minute).UnixNano()}, 1)))
	drained(t, o, 10*time.Second)
	closeOutput(t, o)
	got := strings.Join(f.accepted, "")
	if n := strings.Count(got, "\n"); n != 12 {
		t.Fatalf("%d points arrived, want 12", n)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
		if seen[l] {
			t.Fatalf("point %q arrived twice", l)
		}
		seen[l] = true
	}
}

// TestTagsAndWarnings: default tags leave out addresses, ports and flags;
// configured tags must be primitives of the aggregate; addresses and ports
// as tags give a warning that says what they cost.
func TestTagsAndWarnings(t *testing.T) {
	o := New()
	o.Bucket = "b"
	primitives := []string{"peer_src_ip", "src_host", "dst_port", "tcpflags", "proto", "in_iface"}
	env := func() *core.Env {
		e := core.NewEnv("influxdb", "")
		e.Primitives = primitives
		return e
	}
	if err := o.Init(env()); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, tg := range o.tags {
		keys = append(keys, tg.key)
	}
	if fmt.Sprint(keys) != "[exporter in_iface proto]" || len(o.Warnings()) != 0 {
		t.Fatalf("default tags %v, warnings %v", keys, o.Warnings())
	}
	o = New()
	o.Bucket, o.Tags = "b", []string{"src_host", "proto", "dst_port"}
	if err := o.Init(env()); err != nil {
		t.Fatal(err)
	}
	if w := o.Warnings(); len(w) != 2 || !strings.Contains(w[0], "src_host is an address") || !strings.Contains(w[1], "dst_port is a port") || !strings.Contains(w[0], "series") {
		t.Fatalf("warnings %q", w)
	}
	o = New()
	o.Bucket, o.Tags = "b", []string{"dst_as"}
	if err := o.Init(env()); err == nil || !strings.Contains(err.Error(), "not a primitive of the aggregate") {
		t.Fatalf("a tag the records lack: %v", err)
	}
	for _, bad := range []func(*InfluxDB){
		func(o *InfluxDB) { o.URL = "localhost:8086" },
		func(o *InfluxDB) { o.Bucket = "" },
		func(o *InfluxDB) { o.ContentEncoding = "br" },
		func(o *InfluxDB) { o.Tags = []string{"packets"} },
		func(o *InfluxDB) { o.Tags = []string{"flows"} },
	} {
		o := New()
		o.Bucket = "b"
		bad(o)
		if o.Validate() == nil {
			t.Errorf("accepted %+v", o)
		}
	}
}

// TestLineProtocol: the exact text of a point.
func TestLineProtocol(t *testing.T) {
	o := New()
	o.Bucket, o.Measurement = "b", "net flows"
	o.Tags = []string{"peer_src_ip", "src_net", "src_mac", "proto"}
	env := core.NewEnv("influxdb", "")
	if err := o.Init(env); err != nil {
		t.Fatal(err)
	}
	r := core.Record{Exporter: netip.MustParseAddr("2001:db8::1"), SrcAddr: netip.MustParseAddr("10.1.0.0"), SrcMask: 16,
		SrcMAC: [6]byte{0, 0x1b, 0x2c, 3, 4, 0xff}, Proto: 6}
	line := appendLine(nil, string(o.appendSeries(nil, &r)), 3, 4500, 2, 1700000000000000000)
	want := `net\ flows,exporter=2001:db8::1,proto=6,src_mac=00:1b:2c:03:04:ff,src_net=10.1.0.0/16 packets=3i,bytes=4500i,flows=2i 1700000000000000000` + "\n"
	if string(line) != want {
		t.Fatalf("line\n%s\nwant\n%s", line, want)
	}
	r.Exporter = netip.Addr{}
	if s := string(o.appendSeries(nil, &r)); strings.Contains(s, "exporter") {
		t.Fatalf("a missing address became a tag: %s", s)
	}
}

// TestTotalsFile: saved totals load back; a damaged file is an error, not
// a panic.
func TestTotalsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "totals")
	in := []total{{series: "flows,exporter=1.2.3.4", bin: 60e9, ts: 60e9 + 5e6, packets: 1, bytes: 2, flows: 3}, {series: "flows", bin: 120e9, ts: 120e9}}
	if err := saveTotals(path, 42e9, in); err != nil {
		t.Fatal(err)
	}
	cutoff, out, found, err := loadTotals(path)
	if err != nil || !found || cutoff != 42e9 || fmt.Sprint(out) != fmt.Sprint(in) {
		t.Fatalf("loaded %d %v, %v", cutoff, out, err)
	}
	data, _ := os.ReadFile(path)
	for i := range data {
		d := append([]byte(nil), data...)
		d[i] ^= 0x5a
		os.WriteFile(path, d, 0o644)
		if _, _, _, err := loadTotals(path); err == nil {
			t.Fatalf("byte %d damaged, file accepted", i)
		}
	}
}

// TestTLSVerifiesServer: an https URL is verified against tls_ca; without
// the CA the server is refused (and the points wait), with it they arrive.
func TestTLSVerifiesServer(t *testing.T) {
	var got sync.WaitGroup
	got.Add(1)
	var once sync.Once
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(204)
		once.Do(got.Done)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	os.WriteFile(ca, pemBytes, 0o644)
	bin := time.Now().Truncate(time.Minute).UnixNano()

	var log syncBuf
	untrusted := newOutput(t, srv.URL, "u:p", "db/rp", logTo("influxdb", "", aggPrimitives, &log), nil)
	untrusted.Write(context.Background(), batchOf(refresh(10, []int64{bin}, 1)))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log.String(), "certificate") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(log.String(), "certificate") || untrusted.buf.Empty() {
		t.Fatalf("an unverified server was trusted:\n%s", log.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	untrusted.Close(ctx)
	cancel()

	env := core.NewEnv("influxdb", "")
	env.Primitives = aggPrimitives
	trusted := newOutput(t, srv.URL, "u:p", "db/rp", env, func(o *InfluxDB) { o.TLSCA = ca })
	trusted.Write(context.Background(), batchOf(refresh(10, []int64{bin}, 1)))
	drained(t, trusted, 10*time.Second)
	closeOutput(t, trusted)
	got.Wait()
}
