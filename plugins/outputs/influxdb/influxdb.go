// Package influxdb is outputs.influxdb: it writes flow aggregates to
// InfluxDB (2.x and 3.x through the v2 write API, 1.8+ through its
// compatibility endpoint) and to servers that speak the same line protocol
// (VictoriaMetrics), as time series Grafana can group by.
//
// Shape: the primitives listed in tags become tags, packets, bytes and flows
// integer fields, the timestamp is the aggregate's bin start. Records that
// share the tag set and bin are summed into one point (the primitives left
// out of tags are summed over).
//
// Exact under overwrite: InfluxDB keeps one value per series and timestamp,
// while the aggregate emits, at every refresh, what arrived since the last.
// The output keeps the running total of every (tag set, bin) and writes the
// total, so the last write of a point is the sum of everything sent for it;
// see README.md for when totals are forgotten and what happens to records
// that arrive later, after a restart, or without bins.
//
// Delivery: Write turns the batch into points and pushes them into a
// plugins/common/spool (memory, then spool files, in order, surviving a
// restart) and returns; a sender goroutine posts them in requests of
// batch_size points. 2xx is written; 429 and 503 are retried after the
// server's Retry-After; 413 splits the request; 400 and 422 are counted as
// rejected and logged with the server's message; connection errors and
// other answers are retried with backoff while the points wait in the spool.
// Replaying a request is harmless: it rewrites the same totals.
package influxdb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/ratelog"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/plugins/common/spool"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Outputs, "influxdb", sample, func() any { return New() })
}

// Interface guards.
var (
	_ core.MemoryHolder = (*InfluxDB)(nil)
	_ core.Output       = (*InfluxDB)(nil)
	_ core.Initializer  = (*InfluxDB)(nil)
	_ core.Validator    = (*InfluxDB)(nil)
	_ core.Warner       = (*InfluxDB)(nil)
)

// InfluxDB is the outputs.influxdb plugin and its configuration.
type InfluxDB struct {
	URL          string `toml:"url"`
	Token        string `toml:"token"`
	Organization string `toml:"organization"`
	Bucket       string `toml:"bucket"`
	Measurement  string `toml:"measurement"`
	// Tags are the primitives written as tags (nil: the default, see
	// defaultTags).
	Tags []string `toml:"tags"`

	ContentEncoding string        `toml:"content_encoding"`
	Timeout         core.Duration `toml:"timeout"`
	BatchSize       int           `toml:"batch_size"`

	TLSCA              string `toml:"tls_ca"`
	TLSCert            string `toml:"tls_cert"`
	TLSKey             string `toml:"tls_key"`
	TLSServerName      string `toml:"tls_server_name"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`

	BufferPoints int           `toml:"buffer_points"`
	SpoolSize    core.Size     `toml:"spool_size"`
	SpoolDir     string        `toml:"spool_dir"`
	KeepTotals   core.Duration `toml:"keep_totals"`

	log         *slog.Logger
	tags        []tagSpec
	warnings    []string
	measurement string
	binned      bool
	buf         *spool.Spool[[]byte]
	totalsPath  string
	svc         influxhttp.Service
	writeURL    string
	gzip        bool
	m           metrics
	errLog      *ratelog.Limiter
	dropLog     *ratelog.Limiter
	rejectLog   *ratelog.Limiter
	initDone    bool

	// Running totals (Write's goroutine, and Close after the last Write).
	mu      sync.Mutex
	bins    map[int64]*binTotals
	open    int // totals kept, over all bins
	dirty   []dirtyRef
	keyBuf  []byte
	maxBin  int64 // the newest bin seen
	cutoff  int64 // bins before it have had their totals forgotten
	gen     int64 // eviction passes so far
	startNs int64 // when this process started writing
	// pastUnknown: bins before startNs may hold points an earlier run
	// wrote that this one has no totals for (see openTotals).
	pastUnknown bool
	markerPath  string
	offBase     int64 // this process's timestamp offset for bins it cannot know whole
	lastTs      int64 // the newest timestamp given to a point without a bin
	group       map[string]int32
	groupTot    []total

	stop      chan struct{}
	done      chan struct{}
	started   bool
	cancelRun context.CancelFunc
	now       func() time.Time
}

// New returns the plugin with its defaults.
func New() *InfluxDB {
	return &InfluxDB{
		URL: "http://127.0.0.1:8086", Measurement: "flows", ContentEncoding: "gzip",
		Timeout: core.Duration(10 * time.Second), BatchSize: 5000,
		BufferPoints: 1_000_000, SpoolSize: 1 << 30, KeepTotals: core.Duration(time.Hour),
		now: time.Now,
	}
}

type metrics struct {
	bufferPoints, spoolBytes, openTotals                prometheus.Gauge
	written, requests, retries, rejected, dropped, late prometheus.Counter
}

func (o *InfluxDB) registerMetrics(reg prometheus.Registerer) error {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowline", Subsystem: "influxdb", Name: name, Help: help})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "influxdb", Name: name, Help: help})
	}
	o.m = metrics{
		bufferPoints: g("buffer_points", "Points waiting in memory for the server."),
		spoolBytes:   g("spool_bytes", "Bytes of points waiting in spool files."),
		openTotals:   g("open_totals", "Running totals kept (series x bins not yet forgotten)."),
		written:      c("points_written_total", "Points the server accepted (2xx)."),
		requests:     c("requests_total", "Write requests the server accepted."),
		retries:      c("retries_total", "Write requests retried (server away, 429, 503, other errors)."),
		rejected:     c("rejected_points_total", "Points the server refused as bad (400, 422, or a single point too large for 413): not retried."),
		dropped:      c("dropped_points_total", "Points that fit neither the memory buffer nor the spool, or were in an unreadable spool file."),
		late:         c("late_records_total", "Records for a bin whose running totals were already forgotten (keep_totals)."),
	}
	if reg == nil {
		return nil
	}
	for _, m := range []prometheus.Collector{o.m.bufferPoints, o.m.spoolBytes, o.m.openTotals,
		o.m.written, o.m.requests, o.m.retries, o.m.rejected, o.m.dropped, o.m.late} {
		if err := reg.Register(m); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

// Validate checks the configuration on its own (config check calls it too).
func (o *InfluxDB) Validate() error {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q: want http://host:port or https://host:port", o.URL)
	}
	if o.Bucket == "" {
		return errors.New(`bucket is empty: name the bucket (InfluxDB 1.8: "database/retention-policy", or "database" for the default policy)`)
	}
	if o.Measurement == "" {
		return errors.New("measurement is empty")
	}
	switch o.ContentEncoding {
	case "gzip", "identity", "":
	default:
		return fmt.Errorf(`content_encoding %q: want "gzip" or "identity"`, o.ContentEncoding)
	}
	if o.BatchSize <= 0 {
		return errors.New("batch_size must be positive")
	}
	if o.BufferPoints <= 0 {
		return errors.New("buffer_points must be positive")
	}
	if o.Timeout <= 0 {
		return errors.New("timeout must be positive")
	}
	if o.KeepTotals <= 0 {
		return errors.New("keep_totals must be positive")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("tls_cert and tls_key go together")
	}
	if o.Tags != nil {
		if _, err := buildTags(o.Tags); err != nil {
			return err
		}
	}
	return nil
}

// Warnings says what the configured tags cost (core.Warner).
func (o *InfluxDB) Warnings() []string { return o.warnings }

// Init checks the tags against the pipeline, builds the client and opens the
// spool and the running totals a previous run saved.
func (o *InfluxDB) Init(env *core.Env) error {
	if o.initDone {
		return nil
	}
	if err := o.Validate(); err != nil {
		return err
	}
	o.log = env.Logger
	if o.now == nil {
		o.now = time.Now
	}
	o.binned = env.Primitives != nil
	names := o.Tags
	if names == nil {
		names = defaultTags(env.Primitives)
	} else if env.Primitives != nil {
		for _, n := range names {
			if !slices.Contains(env.Primitives, n) {
				return fmt.Errorf("tags: %q is not a primitive of the aggregate upstream (%s): the records do not carry it", n, strings.Join(env.Primitives, ", "))
			}
		}
	}
	tags, err := buildTags(names)
	if err != nil {
		return err
	}
	o.tags = tags
	o.warnings = nil
	for _, n := range names {
		if what, ok := unboundedTags[n]; ok {
			o.warnings = append(o.warnings, fmt.Sprintf("tags: %s is %s: every distinct value becomes a series of its own in InfluxDB's index "+
				"(memory and disk grow with the number of series; InfluxDB 1.8 refuses writes beyond max-series-per-database, 1,000,000 by default); "+
				"leave it out of tags to sum over it, or store per-address data in outputs.mysql or outputs.duckdb", n, what))
		}
	}
	o.measurement = escapeMeasurement(o.Measurement)
	if err := o.registerMetrics(env.Metrics); err != nil {
		return err
	}
	client, err := o.httpClient()
	if err != nil {
		return err
	}
	auth := ""
	if o.Token != "" {
		auth = "Token " + o.Token
	}
	o.svc = influxhttp.NewService(strings.TrimRight(o.URL, "/")+"/", auth, influxhttp.DefaultOptions().SetHTTPDoer(client))
	q := url.Values{"bucket": {o.Bucket}, "precision": {"ns"}}
	if o.Organization != "" {
		q.Set("org", o.Organization)
	}
	o.writeURL = o.svc.ServerAPIURL() + "write?" + q.Encode()
	o.gzip = o.ContentEncoding != "identity"

	dir := spool.DirFor(env.DataDir, o.SpoolDir, "influxdb", env.Name)
	o.buf = spool.New(spool.Config[[]byte]{Dir: dir, Magic: "FLINFLX1", Ext: ".points",
		MaxItems: o.BufferPoints, MaxBytes: int64(o.SpoolSize), Codec: spool.Bytes{}})
	if err := o.buf.Open(0); err != nil {
		return err
	}
	if _, sz, n := o.buf.Sizes(); n > 0 {
		o.log.Info("points from a previous run wait in the spool", "chunks", n, "bytes", sz, "dir", dir)
	}
	o.bins = map[int64]*binTotals{}
	o.group = map[string]int32{}
	o.startNs = o.now().UnixNano()
	// 1..89 ms: distinct for processes started in different seconds (mod 89),
	// and in whole milliseconds so that VictoriaMetrics tells them apart too.
	o.offBase = (o.startNs/1e9%89 + 1) * 1e6
	if err := o.openTotals(dir); err != nil {
		return err
	}
	o.errLog = ratelog.New(o.log, 10*time.Second)
	o.dropLog = ratelog.New(o.log, 10*time.Second)
	o.rejectLog = ratelog.New(o.log, 10*time.Second)
	o.initDone = true
	return nil
}

// openTotals restores the running totals a clean shutdown saved in dir and
// decides whether bins that began before this start may hold points this
// process does not know: after a crash (the marker file "running" is still
// there), with unreadable totals, or without a directory (nothing is kept).
// A first start and a restart after a clean shutdown know them all.
func (o *InfluxDB) openTotals(dir string) error {
	if dir == "" {
		o.pastUnknown = true
		return nil
	}
	o.totalsPath = filepath.Join(dir, "totals")
	o.markerPath = filepath.Join(dir, "running")
	if _, err := os.Stat(o.markerPath); err == nil {
		o.pastUnknown = true
		o.log.Warn("the previous run did not shut down cleanly: points for bins it may have written go to offset timestamps inside those bins (see README)")
	}
	cutoff, ts, _, err := loadTotals(o.totalsPath)
	if err != nil {
		o.pastUnknown = true
		o.log.Warn("running totals of the previous run unreadable: bins it left open continue at an offset timestamp", "file", o.totalsPath, "err", err)
	}
	o.cutoff = cutoff
	for _, t := range ts {
		bt := o.bins[t.bin]
		if bt == nil {
			bt = &binTotals{index: map[string]int32{}}
			o.bins[t.bin] = bt
		}
		bt.index[t.series] = int32(len(bt.totals))
		bt.totals = append(bt.totals, t)
		o.open++
		o.maxBin = max(o.maxBin, t.bin)
	}
	os.Remove(o.totalsPath) // a crash must not bring back stale totals
	if err := os.WriteFile(o.markerPath, []byte("outputs.influxdb runs; removed at a clean shutdown\n"), 0o644); err != nil {
		return fmt.Errorf("spool directory: %w", err)
	}
	return nil
}

// defaultTags is the aggregate's primitives except addresses, ports, TCP
// flags and flows; without an aggregate, a fixed set of low-cardinality
// fields.
func defaultTags(primitives []string) []string {
	if primitives == nil {
		return unaggregatedDefaultTags
	}
	out := []string{}
	for _, p := range primitives {
		if !notDefaultTags[p] {
			out = append(out, p)
		}
	}
	return out
}

func (o *InfluxDB) httpClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	if o.TLSCA != "" || o.TLSCert != "" || o.InsecureSkipVerify || o.TLSServerName != "" {
		cfg := &tls.Config{ServerName: o.TLSServerName, InsecureSkipVerify: o.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
		if o.TLSCA != "" {
			pem, err := os.ReadFile(o.TLSCA)
			if err != nil {
				return nil, fmt.Errorf("tls_ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls_ca %s: no PEM certificate in it", o.TLSCA)
			}
			cfg.RootCAs = pool
		}
		if o.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
			if err != nil {
				return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = cfg
	}
	return &http.Client{Transport: tr, Timeout: time.Duration(o.Timeout)}, nil
}

// Connect checks the token and bucket with an empty write and starts the
// sender. A server that refuses the token or lacks the bucket fails the
// start with what to fix; a server that is away does not: points wait in
// the spool and the sender keeps trying.
func (o *InfluxDB) Connect(ctx context.Context) error {
	if !o.initDone {
		return errors.New("Connect before Init")
	}
	if o.started {
		return nil
	}
	if err := o.probe(ctx); err != nil {
		return err
	}
	o.stop, o.done = make(chan struct{}), make(chan struct{})
	runCtx, cancel := context.WithCancel(context.Background())
	o.cancelRun = cancel
	o.started = true
	go o.sender(runCtx)
	return nil
}

// Write turns the batch into points (running totals per tag set and bin)
// and pushes them into the spool; the sender posts them.
func (o *InfluxDB) Write(ctx context.Context, b *core.Batch) error {
	if !o.initDone {
		return errors.New("Write before Init")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var lines [][]byte
	if o.binned {
		lines = o.absorbBinned(b.Records)
	} else {
		lines = o.absorbUnbinned(b.Records)
	}
	dropped, err := o.buf.Push(lines, 0)
	if dropped > 0 {
		o.m.dropped.Add(float64(dropped))
		o.dropLog.Log(slog.LevelError, "buffer full: points dropped (raise buffer_points or spool_size, or bring the server back)", "points", dropped, "err", err)
	}
	o.updateGauges()
	return nil
}

// probe posts an empty write: InfluxDB answers 204, 401 for a wrong token
// and 404 for a missing database or bucket.
func (o *InfluxDB) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, min(time.Duration(o.Timeout), 5*time.Second))
	defer cancel()
	perr := o.svc.DoPostRequest(ctx, o.writeURL, strings.NewReader(""), nil, func(resp *http.Response) error {
		resp.Body.Close()
		return nil
	})
	switch {
	case perr == nil:
		return nil
	case perr.StatusCode == http.StatusUnauthorized || perr.StatusCode == http.StatusForbidden:
		return core.Permanent(fmt.Errorf("%s refused the token (%s): check token (InfluxDB 1.8: \"user:password\"; ${ENV} in token is expanded)", o.URL, serverMessage(perr)))
	case perr.StatusCode == http.StatusNotFound:
		return core.Permanent(fmt.Errorf("%s has no bucket %q (%s): create it (InfluxDB 1.8: CREATE DATABASE; bucket = \"database/retention-policy\"), or check bucket and organization", o.URL, o.Bucket, serverMessage(perr)))
	case perr.StatusCode == 0:
		o.log.Warn("server not reachable yet: buffering and retrying", "url", o.URL, "err", perr)
	default:
		o.log.Warn("server answered the start-up check with an error: starting anyway, points are retried", "url", o.URL, "status", perr.StatusCode, "server", serverMessage(perr))
	}
	return nil
}

// binTotals are the running totals of one bin, by series.
type binTotals struct {
	index  map[string]int32
	totals []total
}

// dirtyRef names a total that changed in the current Write.
type dirtyRef struct {
	bt  *binTotals
	idx int32
}

// absorbBinned adds the records to the running totals of their (tag set,
// bin) and returns the lines of the totals that changed. A record without
// a bin (an aggregate without history) gets one like absorbUnbinned.
func (o *InfluxDB) absorbBinned(recs []core.Record) [][]byte {
	o.dirty = o.dirty[:0]
	var unbinned []core.Record
	var bt *binTotals
	lastBin := int64(0)
	for i := range recs {
		r := &recs[i]
		if r.Flags&core.FlagOptions != 0 {
			continue
		}
		bin := r.StampInserted
		if bin == 0 {
			unbinned = append(unbinned, *r)
			continue
		}
		if bin < o.cutoff {
			o.m.late.Inc()
		}
		if bt == nil || bin != lastBin {
			bt, lastBin = o.bins[bin], bin
			if bt == nil {
				bt = &binTotals{index: map[string]int32{}}
				o.bins[bin] = bt
				o.maxBin = max(o.maxBin, bin)
			}
		}
		o.keyBuf = o.appendSeries(o.keyBuf[:0], r)
		idx, ok := bt.index[string(o.keyBuf)]
		if !ok {
			t := total{series: string(o.keyBuf), bin: bin, ts: bin}
			if bin < o.cutoff || (o.pastUnknown && bin < o.startNs) {
				// This process forgot the bin's totals, or an earlier
				// process that crashed may have written it: a timestamp
				// of its own makes these points add instead of overwrite.
				t.ts = bin + o.offBase + o.gen
			}
			idx = int32(len(bt.totals))
			bt.totals = append(bt.totals, t)
			bt.index[t.series] = idx
			o.open++
		}
		t := &bt.totals[idx]
		t.packets += r.Packets
		t.bytes += r.Bytes
		t.flows += r.Flows
		if !t.dirty {
			t.dirty = true
			o.dirty = append(o.dirty, dirtyRef{bt, idx})
		}
	}
	// One block of text for all lines (one allocation per Write).
	size := 0
	for _, d := range o.dirty {
		size += len(d.bt.totals[d.idx].series) + 80
	}
	block := make([]byte, 0, size)
	ends := make([]int, 0, len(o.dirty))
	for _, d := range o.dirty {
		t := &d.bt.totals[d.idx]
		block = appendLine(block, t.series, t.packets, t.bytes, t.flows, t.ts)
		ends = append(ends, len(block))
		t.dirty = false
	}
	lines := make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		lines[i] = block[start:end:end]
		start = end
	}
	o.evict()
	if len(unbinned) > 0 {
		lines = append(lines, o.absorbUnbinned(unbinned)...)
	}
	return lines
}

// evict forgets the totals of bins that started more than keep_totals
// before the newest bin seen.
func (o *InfluxDB) evict() {
	cutoff := o.maxBin - int64(o.KeepTotals)
	if cutoff > o.cutoff {
		evicted := false
		for bin, bt := range o.bins {
			if bin < cutoff {
				o.open -= len(bt.totals)
				delete(o.bins, bin)
				evicted = true
			}
		}
		o.cutoff = cutoff
		if evicted {
			o.gen++
		}
	}
	o.m.openTotals.Set(float64(o.open))
}

// allTotals lists the running totals of every open bin (for saving).
func (o *InfluxDB) allTotals() []total {
	out := make([]total, 0, o.open)
	for _, bt := range o.bins {
		out = append(out, bt.totals...)
	}
	return out
}

// absorbUnbinned sums records without a bin (no aggregate, or one without
// history) per tag set and gives each sum a timestamp of its own: now, in
// nanoseconds, moved forward past every timestamp given before, so that no
// two points of a series share one.
func (o *InfluxDB) absorbUnbinned(recs []core.Record) [][]byte {
	clear(o.group)
	o.groupTot = o.groupTot[:0]
	for i := range recs {
		r := &recs[i]
		if r.Flags&core.FlagOptions != 0 {
			continue
		}
		o.keyBuf = o.appendSeries(o.keyBuf[:0], r)
		idx, ok := o.group[string(o.keyBuf)]
		if !ok {
			key := string(o.keyBuf)
			idx = int32(len(o.groupTot))
			o.groupTot = append(o.groupTot, total{series: key})
			o.group[key] = idx
		}
		t := &o.groupTot[idx]
		t.packets += r.Packets
		t.bytes += r.Bytes
		t.flows += r.Flows
	}
	ts := o.now().UnixNano()
	block := []byte(nil)
	ends := make([]int, 0, len(o.groupTot))
	for i := range o.groupTot {
		t := &o.groupTot[i]
		ts = max(ts, o.lastTs+1)
		o.lastTs = ts
		block = appendLine(block, t.series, t.packets, t.bytes, t.flows, ts)
		ends = append(ends, len(block))
	}
	lines := make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		lines[i] = block[start:end:end]
		start = end
	}
	return lines
}

func (o *InfluxDB) updateGauges() {
	mem, disk, _ := o.buf.Sizes()
	o.m.bufferPoints.Set(float64(mem))
	o.m.spoolBytes.Set(float64(disk))
}

// Close sends what waits until ctx ends, then spills the rest to the spool
// and saves the running totals for the next start.
func (o *InfluxDB) Close(ctx context.Context) error {
	if o.started {
		close(o.stop)
		select {
		case <-o.done:
		case <-ctx.Done():
			o.cancelRun() // abandon the request in flight; its points stay spooled
			<-o.done
		}
		o.cancelRun()
		o.started = false
	}
	if o.buf == nil {
		return nil
	}
	var err error
	lost, serr := o.buf.Spill()
	o.updateGauges()
	if lost > 0 {
		o.m.dropped.Add(float64(lost))
		o.log.Error("points lost at close: the server did not take them and the spool could not", "points", lost, "err", serr)
		err = fmt.Errorf("%d points lost at close: %v", lost, serr)
	} else if _, sz, n := o.buf.Sizes(); n > 0 {
		o.log.Warn("points left in the spool for the next start", "chunks", n, "bytes", sz)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.totalsPath != "" {
		if serr := saveTotals(o.totalsPath, o.cutoff, o.allTotals()); serr != nil {
			o.log.Error("running totals not saved: bins still open continue at an offset timestamp after the restart", "err", serr)
		} else {
			os.Remove(o.markerPath)
		}
	}
	return err
}

// HeldBytes is the memory of what waits in the memory buffer (the engine's
// budget counts it).
func (o *InfluxDB) HeldBytes() int64 {
	if o.buf == nil {
		return 0
	}
	return o.buf.MemBytes()
}
