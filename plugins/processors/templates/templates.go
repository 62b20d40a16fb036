// Package templates is processors.templates: it decodes NetFlow v5/v9 and
// IPFIX packets into flow records, keeping the template store.
//
// Templates are keyed by exporter address, version, source id / observation
// domain and template id. They are saved to a file in agent.data_dir
// (atomically: temporary file, sync, rename) whenever they change, at most
// every save_every, and at shutdown; at start the file is loaded so that a
// restarted collector decodes data at once. Data sets that arrive before
// their template wait in a bounded per-exporter queue and are decoded when
// the template arrives. The engine inserts this processor with its defaults
// when a configuration has none and some output consumes records.
package templates

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/ratelog"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/plugins/common/netflow"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Processors, "templates", sample, func() any {
		return &Templates{
			File:          "templates.json",
			SaveEvery:     core.Duration(10 * time.Second),
			PendingMax:    4096,
			PendingMaxAge: core.Duration(5 * time.Minute),

			PendingMaxBytes:             netflow.DefaultPendingMaxBytes,
			MaxExporters:                netflow.DefaultMaxExporters,
			MaxTemplatesPerExporter:     netflow.DefaultMaxTemplatesPerExporter,
			MaxTemplateChangesPerMinute: netflow.DefaultMaxTemplateChangesPerMinute,
			TemplateTTL:                 core.Duration(24 * time.Hour),
			ShareInterval:               core.Duration(time.Minute),
		}
	})
}

// Templates is the processor and its configuration.
type Templates struct {
	// File is where templates persist, relative to agent.data_dir; "" keeps
	// them in memory only.
	File      string        `toml:"file"`
	SaveEvery core.Duration `toml:"save_every"`
	// PendingMax bounds the data sets queued per exporter while their
	// template is unknown; PendingMaxAge is how long one may wait.
	PendingMax    int           `toml:"pending_max"`
	PendingMaxAge core.Duration `toml:"pending_max_age"`
	// PendingMaxBytes bounds the early-data queue of all exporters together.
	PendingMaxBytes core.Size `toml:"pending_max_bytes"`
	// MaxExporters, MaxTemplatesPerExporter and MaxTemplateChangesPerMinute
	// cap the template state a sender can grow; beyond them templates are
	// refused and counted.
	MaxExporters                int `toml:"max_exporters"`
	MaxTemplatesPerExporter     int `toml:"max_templates_per_exporter"`
	MaxTemplateChangesPerMinute int `toml:"max_template_changes_per_minute"`
	// TemplateTTL expires templates an exporter has not refreshed for this
	// long; "0s" keeps them forever.
	TemplateTTL core.Duration `toml:"template_ttl"`
	// Extensions keeps elements without a typed field (vendor elements).
	Extensions bool `toml:"extensions"`
	// ShareTo lists where every template learned from a datagram is sent
	// (pmacct's nfacctd_templates_receiver): the replicator's inputs.replica,
	// which hands it to every collector, or peers' inputs.replica.
	ShareTo []string `toml:"share_to"`
	// ShareSecret authenticates the shared templates for the receivers'
	// inputs.replica secret ("${FLOWLINE_REPLICA_SECRET}").
	ShareSecret string `toml:"share_secret"`
	// ShareInterval resends every known template to share_to this often, so
	// that a peer that started later or lost a datagram catches up; "0s"
	// shares changes only.
	ShareInterval core.Duration `toml:"share_interval"`

	path    string
	log     *slog.Logger
	bad     *ratelog.Limiter
	dec     *netflow.Decoder
	dirty   bool
	lastSav time.Time
	// lastRecords is how many records the last batch decoded into: a new
	// batch is grown to it at once rather than doubling up to it.
	lastRecords int
	m           decoderMetrics

	share     *sharer
	toShare   []netflow.TemplateSet
	lastShare time.Time

	// For the engine's budget and loss log (read from its goroutine).
	pendingBytes             atomic.Int64
	droppedSets, expiredSets atomic.Uint64
	refusedTemplates         atomic.Uint64
}

type decoderMetrics struct {
	malformed, templates, queued, released, droppedQueued, expiredQueued, expiredTemplates, refused prometheus.Counter
}

var (
	_ core.Processor    = (*Templates)(nil)
	_ core.Ticker       = (*Templates)(nil)
	_ core.Initializer  = (*Templates)(nil)
	_ core.MemoryHolder = (*Templates)(nil)
	_ core.DropReporter = (*Templates)(nil)
)

// HeldBytes is the size of the early-data queue (the engine's budget
// counts it).
func (t *Templates) HeldBytes() int64 { return t.pendingBytes.Load() }

// Dropped reports the data sets lost from the early-data queue.
func (t *Templates) Dropped() []core.Drop {
	return []core.Drop{
		{Why: "early-data queue full", Unit: "data sets", N: t.droppedSets.Load()},
		{Why: "no template within pending_max_age", Unit: "data sets", N: t.expiredSets.Load()},
	}
}

// Init builds the decoder and loads the saved templates.
func (t *Templates) Init(env *core.Env) error {
	if t.PendingMax < 1 {
		return fmt.Errorf("pending_max = %d: want at least 1", t.PendingMax)
	}
	if t.PendingMaxAge <= 0 {
		return fmt.Errorf("pending_max_age must be positive")
	}
	if t.PendingMaxBytes != 0 && t.PendingMaxBytes < 64<<10 {
		return fmt.Errorf("pending_max_bytes = %s: at least 64KiB", t.PendingMaxBytes)
	}
	if t.MaxExporters < 0 || t.MaxTemplatesPerExporter < 0 || t.MaxTemplateChangesPerMinute < 0 {
		return fmt.Errorf("max_exporters, max_templates_per_exporter and max_template_changes_per_minute must be positive")
	}
	t.log = env.Logger
	t.bad = ratelog.New(t.log, 10*time.Second)
	t.dec = netflow.NewDecoder(netflow.DecoderConfig{
		PendingMaxPerExporter: t.PendingMax,
		PendingMaxAge:         time.Duration(t.PendingMaxAge),
		TemplateTTL:           time.Duration(t.TemplateTTL),
		KeepExtensions:        t.Extensions,

		PendingMaxBytes:             int(t.PendingMaxBytes),
		MaxExporters:                t.MaxExporters,
		MaxTemplatesPerExporter:     t.MaxTemplatesPerExporter,
		MaxTemplateChangesPerMinute: t.MaxTemplateChangesPerMinute,
	})
	t.dec.OnTemplate = func(ts netflow.TemplateSet) {
		t.dirty = true
		if t.share != nil {
			t.toShare = append(t.toShare, ts)
		}
	}
	if err := t.registerMetrics(env); err != nil {
		return err
	}
	if len(t.ShareTo) > 0 {
		if t.ShareInterval < 0 {
			return fmt.Errorf("share_interval must not be negative")
		}
		sh, err := newSharer(t.ShareTo, t.ShareSecret, env)
		if err != nil {
			return err
		}
		t.share = sh
		t.lastShare = time.Now()
	}
	if t.File == "" {
		return nil
	}
	t.path = t.File
	if !filepath.IsAbs(t.path) {
		t.path = filepath.Join(env.DataDir, t.File)
	}
	return t.load()
}

func (t *Templates) registerMetrics(env *core.Env) error {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "templates", Name: name, Help: help})
	}
	t.m = decoderMetrics{
		malformed:        c("malformed_packets_total", "Datagrams that failed to decode (counted and skipped)."),
		templates:        c("learned_total", "Templates and options templates learned or refreshed."),
		queued:           c("data_sets_queued_total", "Data sets that waited for their template."),
		released:         c("data_sets_released_total", "Queued data sets decoded once their template arrived."),
		droppedQueued:    c("data_sets_dropped_total", "Queued data sets dropped because the exporter's queue was full."),
		expiredQueued:    c("data_sets_expired_total", "Queued data sets whose template never came."),
		expiredTemplates: c("expired_total", "Templates expired after template_ttl without a refresh."),
		refused:          c("refused_total", "Templates refused by max_exporters, max_templates_per_exporter or max_template_changes_per_minute."),
	}
	for _, m := range []prometheus.Collector{t.m.malformed, t.m.templates, t.m.queued, t.m.released,
		t.m.droppedQueued, t.m.expiredQueued, t.m.expiredTemplates, t.m.refused} {
		if err := env.Metrics.Register(m); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// load reads the template file. A missing file is a first start; a file that
// does not parse is an error naming it, so that a foreign file is never
// silently replaced.
func (t *Templates) load() error {
	data, err := os.ReadFile(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read templates: %w", err)
	}
	sets, err := netflow.UnmarshalTemplates(data)
	if err != nil {
		return fmt.Errorf("templates file %s is not a Flowline template file (move it away to start afresh): %w", t.path, err)
	}
	// A restart is not the exporter's silence: count the age from now.
	now := time.Now()
	for i := range sets {
		sets[i].Learned = now
	}
	b := core.NewBatch()
	t.dec.AddTemplates(sets, b)
	b.Release()
	t.dirty = false
	t.log.Info("templates loaded", "file", t.path, "templates", len(sets))
	return nil
}

// save writes the templates atomically: temporary file, sync, rename.
func (t *Templates) save() error {
	if t.path == "" {
		t.dirty = false
		return nil
	}
	data, err := netflow.MarshalTemplates(t.dec.Templates())
	if err != nil {
		return fmt.Errorf("encode templates: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(t.path), 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := writeFileAtomic(t.path, data); err != nil {
		return err
	}
	t.dirty = false
	t.lastSav = time.Now()
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save templates: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("save templates to %s: %w", path, err)
	}
	return nil
}

// Process decodes the batch's packets into a new batch of records. Malformed
// datagrams are counted, logged (rate-limited) and skipped.
func (t *Templates) Process(_ context.Context, in *core.Batch, emit core.Emit) error {
	if len(in.Packets) == 0 {
		// Records from an input that emits them (inputs.amqp) pass
		// through untouched, with their acknowledgement and origin.
		emit(in)
		return nil
	}
	out := core.NewBatch()
	out.Records = slices.Grow(out.Records, max(t.lastRecords, len(in.Records)))
	out.Records = append(out.Records, in.Records...)
	in.MoveAcks(out)
	for i := range in.Packets {
		st, err := t.dec.Decode(in.Packets[i], out)
		t.count(st)
		if err != nil {
			t.m.malformed.Inc()
			t.bad.Log(slog.LevelWarn, "malformed packet skipped", "exporter", in.Packets[i].Exporter.String(), "err", err)
		}
	}
	in.Release()
	t.lastRecords = len(out.Records)
	emit(out)
	t.shareLearned()
	if t.dirty && time.Since(t.lastSav) >= time.Duration(t.SaveEvery) {
		if err := t.save(); err != nil {
			return err
		}
	}
	return nil
}

func (t *Templates) count(st netflow.DecodeStats) {
	if st.Templates > 0 {
		t.m.templates.Add(float64(st.Templates))
	}
	if st.Queued > 0 {
		t.m.queued.Add(float64(st.Queued))
	}
	if st.Released > 0 {
		t.m.released.Add(float64(st.Released))
	}
	if st.DroppedQueued > 0 {
		t.m.droppedQueued.Add(float64(st.DroppedQueued))
		t.droppedSets.Add(uint64(st.DroppedQueued))
	}
	if st.Refused > 0 {
		t.m.refused.Add(float64(st.Refused))
		t.refusedTemplates.Add(uint64(st.Refused))
		t.bad.Log(slog.LevelWarn, "templates refused: a cap on template state is reached (max_exporters, max_templates_per_exporter, max_template_changes_per_minute)",
			"refused", st.Refused, "exporters", t.dec.Exporters())
	}
	t.pendingBytes.Store(int64(t.dec.PendingBytes()))
}

// TickEvery is how often queues and templates are expired and saved.
func (t *Templates) TickEvery() time.Duration { return time.Second }

// Tick expires stale queued data and templates and saves changed templates.
func (t *Templates) Tick(_ context.Context, now time.Time, _ core.Emit) error {
	q, tm := t.dec.Expire(now)
	if q > 0 {
		t.m.expiredQueued.Add(float64(q))
		t.expiredSets.Add(uint64(q))
		t.pendingBytes.Store(int64(t.dec.PendingBytes()))
	}
	if tm > 0 {
		t.m.expiredTemplates.Add(float64(tm))
		t.dirty = true
	}
	if t.share != nil && t.ShareInterval > 0 && now.Sub(t.lastShare) >= time.Duration(t.ShareInterval) {
		t.lastShare = now
		t.share.send(t.dec.Templates())
	}
	if t.dirty && now.Sub(t.lastSav) >= time.Duration(t.SaveEvery) {
		return t.save()
	}
	return nil
}

// shareLearned sends the templates learned by the last Process to share_to.
func (t *Templates) shareLearned() {
	if t.share == nil || len(t.toShare) == 0 {
		return
	}
	t.share.send(t.toShare)
	clear(t.toShare)
	t.toShare = t.toShare[:0]
}

// Flush saves the templates and closes the sharing socket.
func (t *Templates) Flush(context.Context, core.Emit) error {
	t.shareLearned()
	if t.share != nil {
		t.share.close()
	}
	if t.dirty {
		return t.save()
	}
	return nil
}
