package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/config"
	"github.com/flowline/flowline/core/registry"
)

// LossInterval is how often, at most, the engine logs that it dropped data.
const LossInterval = 10 * time.Second

// DropsPath is where the engine serves its drop counters on the metrics
// address (loopback clients; `flowline stats` reads it).
const DropsPath = "/api/engine/drops"

// budget is agent.max_buffer: the bytes of queued batches (core.QueuedBytes)
// plus what plugins hold for the pipeline (core.MemoryHolder). Inputs drop
// beyond it.
//
// Outputs' memory buffers (mysql, influxdb, amqp) are reported but do not
// make inputs drop: each is bounded by its own setting (buffer_rows,
// buffer_points) and spills to its disk spool beyond it, so that an outage
// of the server loses nothing while the disk has room; counting them would
// drop at the input what the spool would have kept.
type budget struct {
	max     int64
	holders []core.MemoryHolder // inputs and processors (early-data queue)
	outputs []core.MemoryHolder // outputs' memory buffers
	held    atomic.Int64        // the holders' sum at the last poll
	outHeld atomic.Int64        // the outputs' sum at the last poll
}

// over reports whether the pipeline's queued and held data pass an eighth
// of the budget. The rest is for what is not queued (the processors'
// state: aggregate tables, templates; outputs' buffers) and for the garbage
// collector's headroom: a heap of live data L grows to about 2L between
// collections unless the soft memory limit (limitHeap) makes it collect
// sooner.
func (b *budget) over() bool {
	return b.max > 0 && core.QueuedBytes()+b.held.Load() > b.queueLimit()
}

// queueLimit is the part of the budget queued and held data may take. With
// a quarter, an overloaded raw flow log (64 MiB of queued records plus its
// segment buffers) kept the live heap at the soft limit: the collector ran
// back to back and the stored rate fell from 2.1M to 1.2M flows/s. With an
// eighth it stays at what the core can do.
func (b *budget) queueLimit() int64 { return b.max / 8 }

// limitHeap sets the Go runtime's soft memory limit to nine sixteenths of the
// budget (unless GOMEMLIMIT is set; the rest is for memory outside the Go
// heap: freed pages not yet returned, stacks, DuckDB's own), so that under
// overload the collector runs before the heap passes it instead of letting
// it double. It returns the limit.
func (b *budget) limitHeap() int64 {
	if b.max <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	limit := b.max / 16 * 9
	debug.SetMemoryLimit(limit)
	return limit
}

// poll refreshes the holders' sum.
func (b *budget) poll() {
	var n, o int64
	for _, h := range b.holders {
		n += h.HeldBytes()
	}
	for _, h := range b.outputs {
		o += h.HeldBytes()
	}
	b.held.Store(n)
	b.outHeld.Store(o)
}

// lossCounter counts the items one stage dropped for one reason.
type lossCounter struct {
	stage, why, unit string
	n                atomic.Uint64
}

// lossReporter is a plugin that counts its own drops.
type lossReporter struct {
	stage string
	r     core.DropReporter
}

// lossLog gathers every drop of the pipeline: the engine's own (inputs
// beyond the budget or a full queue, outputs giving a batch up) and those
// plugins report (early-data queue, kernel socket buffer). It logs one line
// at most every LossInterval while anything is dropped, and the totals at
// shutdown.
type lossLog struct {
	log       *slog.Logger
	mu        sync.Mutex
	counters  []*lossCounter
	reporters []lossReporter
	last      map[string]uint64 // by lossKey, at the last line
	lastAt    time.Time
}

func newLossLog(log *slog.Logger) *lossLog {
	return &lossLog{log: log, last: map[string]uint64{}, lastAt: time.Now()}
}

// counter returns the counter of a stage's drops for a reason.
func (l *lossLog) counter(stage, why, unit string) *lossCounter {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.counters {
		if c.stage == stage && c.why == why && c.unit == unit {
			return c
		}
	}
	c := &lossCounter{stage: stage, why: why, unit: unit}
	l.counters = append(l.counters, c)
	return c
}

func (l *lossLog) addReporter(stage string, r core.DropReporter) {
	l.mu.Lock()
	l.reporters = append(l.reporters, lossReporter{stage, r})
	l.mu.Unlock()
}

// LossEntry is one kind of drop, with its running total.
type LossEntry struct {
	Stage string `json:"stage"`
	Why   string `json:"why"`
	Unit  string `json:"unit"`
	N     uint64 `json:"n"`
}

func (e LossEntry) key() string { return e.Stage + "\x00" + e.Why + "\x00" + e.Unit }

// snapshot reads every counter, sorted by stage and reason.
func (l *lossLog) snapshot() []LossEntry {
	l.mu.Lock()
	counters := append([]*lossCounter(nil), l.counters...)
	reporters := append([]lossReporter(nil), l.reporters...)
	l.mu.Unlock()
	var out []LossEntry
	for _, c := range counters {
		out = append(out, LossEntry{c.stage, c.why, c.unit, c.n.Load()})
	}
	for _, r := range reporters {
		for _, d := range r.r.Dropped() {
			out = append(out, LossEntry{r.stage, d.Why, d.Unit, d.N})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Stage != out[j].Stage {
			return out[i].Stage < out[j].Stage
		}
		return out[i].Why < out[j].Why
	})
	return out
}

// sums adds the entries of unit "packets" and of unit "flows".
func sums(es []LossEntry, n func(LossEntry) uint64) (packets, flows uint64) {
	for _, e := range es {
		switch e.Unit {
		case "packets":
			packets += n(e)
		case "flows":
			flows += n(e)
		}
	}
	return
}

// describe is "stage: n unit (why); ..." for the entries where n > 0.
func describe(es []LossEntry, n func(LossEntry) uint64) string {
	var parts []string
	for _, e := range es {
		if v := n(e); v > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d %s (%s)", e.Stage, v, e.Unit, e.Why))
		}
	}
	return strings.Join(parts, "; ")
}

// report logs one line when something was dropped since the last one.
func (l *lossLog) report(now time.Time) {
	es := l.snapshot()
	since := func(e LossEntry) uint64 { return e.N - l.last[e.key()] }
	total := func(e LossEntry) uint64 { return e.N }
	detail := describe(es, since)
	if detail == "" {
		return
	}
	p, f := sums(es, since)
	tp, tf := sums(es, total)
	l.log.Warn("dropped since the last report", "packets", p, "flows", f, "total_packets", tp, "total_flows", tf,
		"period", now.Sub(l.lastAt).Round(time.Second), "detail", detail)
	for _, e := range es {
		l.last[e.key()] = e.N
	}
	l.lastAt = now
}

// totals are the shutdown line's attributes.
func (l *lossLog) totals() []any {
	es := l.snapshot()
	total := func(e LossEntry) uint64 { return e.N }
	p, f := sums(es, total)
	args := []any{"dropped_packets", p, "dropped_flows", f}
	if d := describe(es, total); d != "" {
		args = append(args, "dropped", d)
	}
	return args
}

// run polls the budget's holders every 100 ms and reports losses every
// LossInterval until ctx ends.
func (l *lossLog) run(ctx context.Context, b *budget) {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	next := time.Now().Add(LossInterval)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-poll.C:
			b.poll()
			if now.After(next) {
				l.report(now)
				next = now.Add(LossInterval)
			}
		}
	}
}

// Drops is what DropsPath answers.
type Drops struct {
	BudgetBytes    int64       `json:"budget_bytes"`
	QueuedBytes    int64       `json:"queued_bytes"`
	HeldBytes      int64       `json:"held_bytes"`
	OutputBytes    int64       `json:"output_buffer_bytes"`
	DroppedPackets uint64      `json:"dropped_packets"`
	DroppedFlows   uint64      `json:"dropped_flows"`
	Entries        []LossEntry `json:"entries"`
}

// serve registers DropsPath.
func (l *lossLog) serve(mux core.HTTPMux, b *budget) {
	mux.Handle(DropsPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			http.Error(w, "loopback clients only", http.StatusForbidden)
			return
		}
		es := l.snapshot()
		d := Drops{BudgetBytes: b.max, QueuedBytes: core.QueuedBytes(), HeldBytes: b.held.Load(), OutputBytes: b.outHeld.Load(), Entries: es}
		if d.Entries == nil {
			d.Entries = []LossEntry{}
		}
		d.DroppedPackets, d.DroppedFlows = sums(es, func(e LossEntry) uint64 { return e.N })
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(d)
	}))
}

// watchLoss gives the runners their loss counters and collects the plugins
// that hold memory or count drops of their own.
func (e *Engine) watchLoss() {
	for _, r := range e.inputs {
		stage := string(r.pc.Kind) + "." + r.pc.DisplayName()
		r.budget = e.budget
		r.overBudget = e.loss.counter(stage, "over agent.max_buffer", "packets")
		r.queueFull = e.loss.counter(stage, "pipeline queue full", "packets")
		if fc, ok := r.in.(core.FlowCounter); ok {
			r.flows = fc
			r.overBudgetFlows = e.loss.counter(stage, "over agent.max_buffer", "flows")
			r.queueFullFlows = e.loss.counter(stage, "pipeline queue full", "flows")
		}
	}
	for _, o := range e.packetOutputs {
		o.lost = e.loss.counter(string(o.pc.Kind)+"."+o.pc.DisplayName(), "write given up", "packets")
	}
	for _, o := range e.recordOutputs {
		o.lost = e.loss.counter(string(o.pc.Kind)+"."+o.pc.DisplayName(), "write given up", "flows")
	}
	var pcs []config.PluginConfig
	for _, r := range e.inputs {
		pcs = append(pcs, r.pc)
	}
	for _, r := range e.processors {
		pcs = append(pcs, r.pc)
	}
	for _, r := range append(append([]*outputRunner{}, e.packetOutputs...), e.recordOutputs...) {
		pcs = append(pcs, r.pc)
	}
	for _, pc := range pcs {
		if h, ok := pc.Plugin.(core.MemoryHolder); ok {
			if pc.Kind == registry.Outputs {
				e.budget.outputs = append(e.budget.outputs, h)
			} else {
				e.budget.holders = append(e.budget.holders, h)
			}
		}
		if d, ok := pc.Plugin.(core.DropReporter); ok {
			e.loss.addReporter(string(pc.Kind)+"."+pc.DisplayName(), d)
		}
	}
	e.loss.serve(e.reg, e.budget)
}
