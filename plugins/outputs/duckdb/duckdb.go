// Package duckdb is outputs.duckdb: Flowline's embedded store, the default
// output. Aggregated flows go into a hot DuckDB table (flows) with typed,
// compact columns, appended in one transaction per batch; a life cycle moves
// old rows into zstd Parquet files per time partition, rolls them up into
// coarser tiers and deletes them after retention. Views (flows_all,
// flows_<tier>) union hot and compressed data for `flowline query`.
//
// Life cycle of the plugin: Init validates the config and resolves paths;
// Connect opens the store (checking the file and the archive against the
// manifest), starts the life-cycle scheduler and serves the store's API on
// the metrics address; Write appends a batch in one transaction (all or
// nothing, so the engine's retry never doubles a row); Close stops the
// scheduler and the API, checkpoints and closes the file.
package duckdb

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/lifecycle"
	"github.com/flowline/flowline/core/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Outputs, "duckdb", sample, func() any { return New() })
}

// New returns the plugin with its defaults.
func New() *DuckDB {
	return &DuckDB{
		Path:         "flowline.duckdb",
		Archive:      "archive",
		Partition:    core.Duration(time.Hour),
		QueryTimeout: core.Duration(DefaultQueryTimeout),
		QueryMaxRows: DefaultQueryMaxRows,
		Lifecycle:    lifecycle.Unset(),
		RawLog: RawLogConfig{
			SegmentRows: DefaultSegmentRows,
			FlushEvery:  core.Duration(10 * time.Second),
			Merge:       true,
		},
	}
}

// RawLogConfig is the [outputs.duckdb.raw_log] table: how the raw flow log
// (the output with no aggregate upstream) writes its segments.
type RawLogConfig struct {
	// SegmentRows is the row count at which a partition's buffer becomes a
	// segment file.
	SegmentRows int `toml:"segment_rows"`
	// FlushEvery is the longest a flow waits in memory (what a kill -9
	// loses at most).
	FlushEvery core.Duration `toml:"flush_every"`
	// Merge has the life cycle merge a partition's segments into one
	// sorted zstd file after compress_after (about 8 bytes a flow instead
	// of 22, for 1-3 µs of DuckDB CPU a flow); false keeps the segments.
	Merge bool `toml:"merge"`
}

// Interface guards.
var (
	_ core.Output         = (*DuckDB)(nil)
	_ core.Initializer    = (*DuckDB)(nil)
	_ lifecycle.Compactor = (*DuckDB)(nil)
	_ core.Validator      = (*DuckDB)(nil)
	_ core.MemoryHolder   = (*DuckDB)(nil)
)

// DuckDB is the outputs.duckdb plugin and its configuration.
type DuckDB struct {
	// Path is the DuckDB file, relative to agent.data_dir.
	Path string `toml:"path"`
	// Archive is the directory of the compressed files, relative to
	// agent.data_dir.
	Archive string `toml:"archive"`
	// Partition is the time span of one archive file.
	Partition core.Duration `toml:"partition"`
	// Threads bounds DuckDB's worker threads (0: one per core).
	Threads int `toml:"threads"`
	// MemoryLimit bounds DuckDB's memory (0: 80% of the RAM).
	MemoryLimit core.Size `toml:"memory_limit"`
	// Primitives, optional, repeat the aggregate's primitives: the output
	// learns them from the pipeline, and given ones must match.
	Primitives []string `toml:"primitives"`
	// QueryTimeout interrupts a query of the store API or the CLI that
	// runs longer.
	QueryTimeout core.Duration `toml:"query_timeout"`
	// QueryMaxRows is the most rows a query answers; longer answers are
	// cut and marked truncated.
	QueryMaxRows int `toml:"query_max_rows"`
	// APIToken, when set, is the bearer token the store API requires (the
	// CLI sends it from the same config); the API then also answers
	// clients that are not on loopback. Give it as "${FLOWLINE_API_TOKEN}".
	APIToken string `toml:"api_token"`
	// Lifecycle is the [outputs.duckdb.lifecycle] table; without it rows
	// stay hot forever.
	Lifecycle lifecycle.Policy `toml:"lifecycle"`
	// RawLog tunes the raw flow log: with no aggregate upstream, flows go
	// into Parquet segment files instead of the hot table.
	RawLog RawLogConfig `toml:"raw_log"`

	policy *lifecycle.Policy
	opt    Options
	name   string
	log    *slog.Logger
	http   core.HTTPMux

	// raw says the records are unaggregated (no aggregate upstream): they
	// go to the raw flow log.
	raw bool

	mu       sync.Mutex
	store    *Store
	rawLog   *RawLog
	sched    *lifecycle.Scheduler
	apiPaths []string
	rows     prometheus.Counter
	// duplicates counts redelivered batches skipped (inputs.amqp).
	duplicates prometheus.Counter
	passes     prometheus.Counter
	hotGauge   prometheus.Gauge
	compGauge  prometheus.Gauge
	rawFlows   prometheus.Counter
	rawLost    prometheus.Counter
}

// Validate checks the configuration (also for `flowline config check`).
func (d *DuckDB) Validate() error {
	if d.Path == "" {
		return errors.New("path must not be empty")
	}
	if d.Archive == "" {
		return errors.New("archive must not be empty")
	}
	if d.Partition < core.Duration(time.Minute) {
		return fmt.Errorf("partition = %s: at least 1m", d.Partition)
	}
	if d.Threads < 0 {
		return errors.New("threads must not be negative")
	}
	if d.MemoryLimit < 0 || d.MemoryLimit > 0 && d.MemoryLimit < 64<<20 {
		return fmt.Errorf("memory_limit = %s: at least 64MiB (or 0 for DuckDB's default)", d.MemoryLimit)
	}
	if d.QueryTimeout <= 0 {
		return fmt.Errorf("query_timeout = %s: must be positive", d.QueryTimeout)
	}
	if d.QueryMaxRows <= 0 {
		return fmt.Errorf("query_max_rows = %d: must be positive", d.QueryMaxRows)
	}
	if d.APIToken != "" && len(d.APIToken) < 16 {
		return errors.New("api_token: at least 16 characters (give it as \"${FLOWLINE_API_TOKEN}\")")
	}
	if d.RawLog.SegmentRows < 1024 || d.RawLog.SegmentRows > 1<<24 {
		return fmt.Errorf("raw_log.segment_rows = %d: between 1024 and 16777216", d.RawLog.SegmentRows)
	}
	if d.RawLog.FlushEvery < core.Duration(100*time.Millisecond) {
		return fmt.Errorf("raw_log.flush_every = %s: at least 100ms", d.RawLog.FlushEvery)
	}
	p, err := d.Lifecycle.Resolve()
	if err != nil {
		return err
	}
	d.policy = p
	return nil
}

// Policy is the resolved life-cycle policy, nil when none is configured.
func (d *DuckDB) Policy() *lifecycle.Policy { return d.policy }

// StoreOptions resolves the store's paths against the data directory.
func (d *DuckDB) StoreOptions(dataDir string, readOnly bool) Options {
	abs := func(p string) string {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dataDir, p)
		}
		return p
	}
	o := Options{Path: abs(d.Path), Archive: abs(d.Archive), Partition: time.Duration(d.Partition), ReadOnly: readOnly, Threads: d.Threads, MemoryLimit: int64(d.MemoryLimit),
		QueryTimeout: time.Duration(d.QueryTimeout), QueryMaxRows: d.QueryMaxRows}
	if d.policy != nil {
		o.Rollups = d.policy.Rollups
	}
	o.KeepSegments = !d.RawLog.Merge
	return o
}

// Init validates the config and registers the metrics.
func (d *DuckDB) Init(env *core.Env) error {
	if err := d.Validate(); err != nil {
		return err
	}
	d.name = env.Name
	d.log = env.Logger
	d.http = env.HTTP
	d.opt = d.StoreOptions(env.DataDir, false)
	d.opt.Logger = d.log
	if len(d.Primitives) > 0 && env.Primitives == nil {
		return fmt.Errorf("primitives = [%s], but no processors.aggregate upstream: records arrive unaggregated (the raw flow log); leave primitives out", strings.Join(d.Primitives, ", "))
	}
	if _, err := core.MatchPrimitives(d.Primitives, env.Primitives); err != nil {
		return err
	}
	d.raw = env.Primitives == nil
	d.rows = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "duckdb", Name: "rows_written_total", Help: "Rows committed to the hot table."})
	d.passes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "duckdb", Name: "lifecycle_passes_total", Help: "Life-cycle passes run."})
	d.hotGauge = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowline", Subsystem: "duckdb", Name: "hot_bytes", Help: "Bytes of the DuckDB file in use (hot rows and bookkeeping)."})
	d.compGauge = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowline", Subsystem: "duckdb", Name: "compressed_bytes", Help: "Bytes of the archive files."})
	d.duplicates = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "duckdb", Name: "duplicate_batches_total", Help: "Redelivered batches skipped: their writer's sequence was stored before."})
	d.rawFlows = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "duckdb", Name: "raw_flows_total", Help: "Flows of the raw flow log listed in the archive (durable)."})
	d.rawLost = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "duckdb", Name: "raw_lost_flows_total", Help: "Flows of the raw flow log lost because a segment could not be written."})
	for _, c := range []prometheus.Collector{d.rows, d.duplicates, d.passes, d.hotGauge, d.compGauge, d.rawFlows, d.rawLost} {
		if err := env.Metrics.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// Connect opens the store, starts the life cycle and the API.
func (d *DuckDB) Connect(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.store != nil {
		return nil
	}
	if d.log == nil {
		return errors.New("Connect before Init")
	}
	s, err := Open(ctx, d.opt)
	if err != nil {
		return err
	}
	d.store = s
	if d.raw {
		l, err := s.OpenRawLog(ctx, RawLogOptions{SegmentRows: d.RawLog.SegmentRows, FlushEvery: time.Duration(d.RawLog.FlushEvery)})
		if err != nil {
			s.Close()
			d.store = nil
			return err
		}
		l.onCommit = func(n int) { d.rawFlows.Add(float64(n)) }
		l.onLost = func(n int) { d.rawLost.Add(float64(n)) }
		d.rawLog = l
	}
	if d.policy != nil {
		d.sched = lifecycle.Start(d, *d.policy, d.log)
	}
	d.serveAPI()
	d.updateGauges(ctx)
	d.log.Info("store open", "path", d.opt.Path, "archive", d.opt.Archive, "lifecycle", d.policy != nil, "raw_flow_log", d.raw)
	return nil
}

// Write appends the batch's flow records in one transaction. A batch from a
// source that redelivers (inputs.amqp) is skipped when its writer's
// sequence was stored before (counted in duplicate_batches_total).
// Unaggregated records go to the raw flow log.
func (d *DuckDB) Write(ctx context.Context, b *core.Batch) error {
	d.mu.Lock()
	s, l := d.store, d.rawLog
	d.mu.Unlock()
	if s == nil {
		return errors.New("Write before Connect")
	}
	if l != nil && !stamped(b.Records) {
		if !l.Write(b) {
			d.duplicates.Inc()
		}
		return nil
	}
	n, err := s.WriteFrom(ctx, b.Records, b.Origin)
	if errors.Is(err, ErrDuplicate) {
		d.duplicates.Inc()
		return nil
	}
	if err != nil {
		return err
	}
	d.rows.Add(float64(n))
	return nil
}

// HeldBytes is the memory of the flows the raw flow log buffers (the
// engine's memory budget counts it); 0 for the hot table, which commits
// each batch.
func (d *DuckDB) HeldBytes() int64 {
	d.mu.Lock()
	l := d.rawLog
	d.mu.Unlock()
	if l == nil {
		return 0
	}
	return l.HeldBytes()
}

// stamped reports whether the first flow record of recs is aggregated.
func stamped(recs []core.Record) bool {
	for i := range recs {
		if recs[i].Flags&core.FlagOptions == 0 {
			return recs[i].Present&core.FieldStamps != 0
		}
	}
	return false
}

// Compact runs one life-cycle pass (the scheduler calls it every
// check_every; the API and `flowline compact` on demand).
func (d *DuckDB) Compact(ctx context.Context, now time.Time, p lifecycle.Policy) (lifecycle.Report, error) {
	d.mu.Lock()
	s := d.store
	d.mu.Unlock()
	if s == nil {
		return lifecycle.Report{}, errors.New("store not open")
	}
	rep, err := s.Compact(ctx, now, p)
	d.passes.Inc()
	d.updateGauges(ctx)
	return rep, err
}

func (d *DuckDB) updateGauges(ctx context.Context) {
	s := d.store
	if s == nil {
		return
	}
	if n, err := s.hotBytes(ctx); err == nil {
		d.hotGauge.Set(float64(n))
	}
	s.mu.Lock()
	var c uint64
	for _, f := range s.files {
		c += f.fileBytes
	}
	s.mu.Unlock()
	d.compGauge.Set(float64(c))
}

// Close stops the life cycle and the API and closes the store.
func (d *DuckDB) Close(ctx context.Context) error {
	d.mu.Lock()
	sched := d.sched
	d.sched = nil
	l := d.rawLog
	d.rawLog = nil
	d.mu.Unlock()
	if sched != nil {
		sched.Stop()
	}
	var rawErr error
	if l != nil {
		rawErr = l.Close(ctx)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.apiPaths {
		d.http.Handle(p, nil)
	}
	d.apiPaths = nil
	if d.store == nil {
		return rawErr
	}
	err := d.store.Close()
	d.store = nil
	return errors.Join(rawErr, err)
}

// APIPath is where the collector serves a duckdb output's API on the
// metrics address: /api/duckdb/<name>/{query,stats,compact}.
func APIPath(name, what string) string { return "/api/duckdb/" + name + "/" + what }

// Authorized says whether a request may use a store API: with a token, a
// request that carries it as "Authorization: Bearer <token>" (from any
// address); without one, a loopback client.
func Authorized(r *http.Request, token string) (ok bool, why string) {
	if token != "" {
		got, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !found || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			return false, "the store API wants the bearer token of api_token"
		}
		return true, ""
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return false, "the store API answers loopback clients only (set api_token to open it to others)"
	}
	return true, ""
}

// serveAPI registers the HTTP API (loopback clients, or holders of the
// api_token): the CLI uses it while the collector holds the file.
func (d *DuckDB) serveAPI() {
	handle := func(what string, f func(ctx context.Context, r *http.Request) (any, error)) {
		p := APIPath(d.name, what)
		d.apiPaths = append(d.apiPaths, p)
		d.http.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ok, why := Authorized(r, d.APIToken); !ok {
				code := http.StatusForbidden
				if d.APIToken != "" {
					code = http.StatusUnauthorized
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				json.NewEncoder(w).Encode(map[string]string{"error": why})
				return
			}
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			v, err := f(r.Context(), r)
			w.Header().Set("Content-Type", "application/json")
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
				return
			}
			json.NewEncoder(w).Encode(v)
		}))
	}
	handle("query", func(ctx context.Context, r *http.Request) (any, error) {
		var req struct {
			SQL string `json:"sql"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return nil, err
		}
		d.mu.Lock()
		s := d.store
		d.mu.Unlock()
		if s == nil {
			return nil, errors.New("store not open")
		}
		return s.Query(ctx, req.SQL)
	})
	handle("stats", func(ctx context.Context, _ *http.Request) (any, error) {
		d.mu.Lock()
		s := d.store
		d.mu.Unlock()
		if s == nil {
			return nil, errors.New("store not open")
		}
		return s.Stats(ctx)
	})
	handle("compact", func(ctx context.Context, _ *http.Request) (any, error) {
		if d.policy == nil {
			return nil, errors.New("no [outputs.duckdb.lifecycle] table: nothing to compact")
		}
		// On demand, the raw flow log's buffered flows first become segments.
		d.mu.Lock()
		l := d.rawLog
		d.mu.Unlock()
		if l != nil {
			if err := l.Flush(ctx); err != nil {
				return nil, err
			}
		}
		rep, err := d.Compact(ctx, time.Now(), *d.policy)
		if err != nil {
			return nil, err
		}
		return map[string]any{"report": rep.String(), "compressed_rows": rep.CompressedRows, "compressed_files": rep.CompressedFiles,
			"rolled_up_rows": rep.RolledUpRows, "deleted_rows": rep.DeletedRows, "deleted_partitions": rep.DeletedPartitions}, nil
	})
}
