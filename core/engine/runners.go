package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/config"
	"github.com/flowline/flowline/core/metrics"
	"github.com/flowline/flowline/core/ratelog"
)

// inputRunner wraps an input: it counts what the input emits and what the
// pipeline could not take.
type inputRunner struct {
	pc  config.PluginConfig
	in  core.Input
	m   *metrics.Plugin
	log *slog.Logger

	budget *budget
	// Drops beyond the budget and on a full queue, for the loss log, and
	// the flows the dropped packets held where the input can count them.
	overBudget, queueFull           *lossCounter
	overBudgetFlows, queueFullFlows *lossCounter
	flows                           core.FlowCounter
}

// lost counts a dropped batch in the loss log.
func (r *inputRunner) lost(packets, flows *lossCounter, b *core.Batch) {
	packets.n.Add(uint64(b.Len()))
	if r.flows != nil {
		flows.n.Add(r.flows.CountFlows(b))
	}
}

// emit returns the input's emit function: a non-blocking send that drops
// (and counts) the batch when the pipeline is full, or, for an input that
// can wait (core.WaitingInput), a send that blocks until the pipeline takes
// the batch or ctx ends.
func (r *inputRunner) emit(ctx context.Context, ch chan<- *core.Batch) func(*core.Batch) bool {
	if w, ok := r.in.(core.WaitingInput); ok && w.WaitsForPipeline() {
		return func(b *core.Batch) bool {
			n := b.Len()
			// Over the budget, wait (bounded by ctx) for the pipeline to
			// drain rather than drop.
			for r.budget.over() && ctx.Err() == nil {
				select {
				case <-time.After(5 * time.Millisecond):
				case <-ctx.Done():
				}
			}
			b.Charge()
			select {
			case ch <- b:
				r.m.Emitted.Add(float64(n))
				return true
			case <-ctx.Done():
				r.m.Dropped.Add(float64(n))
				b.Fail()
				b.Release()
				return false
			}
		}
	}
	return func(b *core.Batch) bool {
		n := b.Len()
		if r.budget.over() {
			r.m.Dropped.Add(float64(n))
			r.lost(r.overBudget, r.overBudgetFlows, b)
			b.Release()
			return false
		}
		b.Charge()
		select {
		case ch <- b:
			r.m.Emitted.Add(float64(n))
			return true
		default:
			r.m.Dropped.Add(float64(n))
			r.lost(r.queueFull, r.queueFullFlows, b)
			b.Release()
			return false
		}
	}
}

// processorRunner drives one processor from its own goroutine.
type processorRunner struct {
	pc   config.PluginConfig
	proc core.Processor
	m    *metrics.Plugin
	log  *slog.Logger
	in   chan *core.Batch
	next stage
}

func (r *processorRunner) run(ctx context.Context) {
	defer r.next.close()
	errs := ratelog.New(r.log, 10*time.Second)
	emit := func(b *core.Batch) {
		if b == nil {
			return
		}
		if b.Len() == 0 {
			b.Release()
			return
		}
		r.m.Emitted.Add(float64(b.Len()))
		b.Charge()
		r.next.send(b)
	}
	var tick <-chan time.Time
	ticker, isTicker := r.proc.(core.Ticker)
	if isTicker && ticker.TickEvery() > 0 {
		t := time.NewTicker(ticker.TickEvery())
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case b, ok := <-r.in:
			if !ok {
				if err := r.proc.Flush(ctx, emit); err != nil {
					r.m.Errors.Inc()
					r.log.Error("flush failed", "err", err)
				}
				return
			}
			r.m.Received.Add(float64(b.Len()))
			r.m.Buffered.Set(float64(len(r.in)))
			start := time.Now()
			if err := r.proc.Process(ctx, b, emit); err != nil {
				r.m.Errors.Inc()
				errs.Log(slog.LevelError, "process failed", "err", err)
			}
			r.m.Latency.Observe(time.Since(start).Seconds())
		case now := <-tick:
			if err := ticker.Tick(ctx, now, emit); err != nil {
				r.m.Errors.Inc()
				errs.Log(slog.LevelError, "tick failed", "err", err)
			}
		}
	}
}

// outputRunner drives one output: it connects, writes every batch with
// retries (an output whose server is down holds the batch and retries with
// backoff, so upstream queues fill and the inputs count their drops instead
// of the output losing acknowledged data), and closes at the end.
type outputRunner struct {
	pc  config.PluginConfig
	out core.Output
	m   *metrics.Plugin
	log *slog.Logger
	in  chan *core.Batch
	// lost counts the items of batches given up (for the loss log).
	lost *lossCounter

	connected bool
}

// Backoff bounds for retried writes and connections.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// connect tries once at start: a permanent error (bad password, wrong table)
// fails the start; any other is retried by run.
func (r *outputRunner) connect(ctx context.Context) error {
	err := r.out.Connect(ctx)
	if err == nil {
		r.connected = true
		return nil
	}
	if core.IsPermanent(err) {
		return err
	}
	r.m.Errors.Inc()
	r.log.Warn("cannot connect yet; will retry and buffer meanwhile", "err", err)
	return nil
}

func (r *outputRunner) run(ctx context.Context) {
	errs := ratelog.New(r.log, 10*time.Second)
	for b := range r.in {
		r.m.Buffered.Set(float64(len(r.in)))
		n := b.Len()
		r.m.Received.Add(float64(n))
		backoff := minBackoff
		for {
			err := r.ensureConnected(ctx)
			if err == nil {
				start := time.Now()
				err = r.out.Write(ctx, b)
				r.m.Latency.Observe(time.Since(start).Seconds())
			}
			if err == nil {
				r.m.Emitted.Add(float64(n))
				break
			}
			r.m.Errors.Inc()
			if core.IsPermanent(err) || ctx.Err() != nil {
				b.Fail()
				r.m.Dropped.Add(float64(n))
				r.lost.n.Add(uint64(n))
				r.log.Error("write failed; batch dropped", "items", n, "err", err)
				break
			}
			errs.Log(slog.LevelWarn, "write failed; retrying", "items", n, "retry_in", backoff, "err", err)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, maxBackoff)
		}
		b.Release()
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.out.Close(closeCtx); err != nil {
		r.m.Errors.Inc()
		r.log.Error("close failed", "err", err)
	}
}

func (r *outputRunner) ensureConnected(ctx context.Context) error {
	if r.connected {
		return nil
	}
	if err := r.out.Connect(ctx); err != nil {
		return err
	}
	r.connected = true
	r.log.Info("connected")
	return nil
}
