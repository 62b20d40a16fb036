// Package engine wires the configured plugins into a pipeline and runs it:
//
//	inputs ─► packets ─┬─► packet outputs (tee)
//	                   └─► processors.templates ─► records ─► processors… ─► record outputs
//
// Stages are goroutines joined by bounded channels of batches. Inputs never
// block: when the first channel is full their batch is dropped and counted.
// Every plugin is wrapped by a runner that counts what it received, emitted,
// dropped and failed, and times each batch.
//
// Shutdown is ordered: inputs stop, then each stage drains its channel and
// closes the next one, processors flush (aggregates), outputs write what
// they hold and close. A deadline (agent.shutdown_timeout) or a second signal
// forces the exit, and the engine says what was lost.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/config"
	"github.com/flowline/flowline/core/metrics"
	"github.com/flowline/flowline/core/registry"
)

// TemplatesProcessor is the name of the processor that decodes packets into
// records; the engine inserts it when a record output exists and the
// configuration declares none.
const TemplatesProcessor = "templates"

// Engine is a configured pipeline ready to run.
type Engine struct {
	agent config.Agent
	log   *slog.Logger
	reg   *metrics.Registry

	inputs        []*inputRunner
	processors    []*processorRunner
	packetOutputs []*outputRunner
	recordOutputs []*outputRunner

	packets chan *core.Batch
	ready   atomic.Bool

	budget *budget
	loss   *lossLog

	// warnings are what `flowline config check` and the start-up log say
	// about a configuration that works but may not do what its author meant.
	warnings []string
}

// Warnings returns what the configuration does that its author may not
// expect (also logged by New).
func (e *Engine) Warnings() []string { return e.warnings }

// checkAcks warns when an input that acknowledges its source at commit
// feeds a processor that absorbs records (an aggregate): its messages are
// then acknowledged when absorbed, and what the aggregate holds at a crash
// is not redelivered.
func (e *Engine) checkAcks() {
	var absorbing []string
	for _, p := range e.processors {
		if _, ok := p.proc.(core.SchemaProvider); ok {
			absorbing = append(absorbing, p.pc.DisplayName())
		}
	}
	if len(absorbing) == 0 {
		return
	}
	for _, in := range e.inputs {
		if a, ok := in.in.(core.AckingInput); ok && a.AcksWhenDone() {
			w := fmt.Sprintf("%s: inputs.%s acknowledges a message when processors.%s has absorbed its records, not when the outputs committed them: what the aggregate holds at a crash is not redelivered",
				in.pc.Where(), in.pc.DisplayName(), strings.Join(absorbing, ", processors."))
			e.warnings = append(e.warnings, w)
			e.log.Warn(w)
		}
	}
}

// New builds the pipeline from a loaded configuration and initializes every
// plugin. It starts nothing.
func New(cfg *config.Config, log *slog.Logger, reg *metrics.Registry) (*Engine, error) {
	if log == nil {
		log = slog.Default()
	}
	if reg == nil {
		reg = metrics.New()
	}
	e := &Engine{agent: cfg.Agent, log: log, reg: reg, loss: newLossLog(log), budget: &budget{max: int64(cfg.Agent.MaxBuffer)}}
	if len(cfg.Inputs) == 0 {
		return nil, fmt.Errorf("%s: no inputs configured: add an [[inputs.netflow]] table", cfg.File)
	}
	for _, pc := range cfg.Outputs {
		o, ok := pc.Plugin.(core.Output)
		if !ok {
			return nil, fmt.Errorf("%s: plugin does not implement an output", pc.Where())
		}
		r := &outputRunner{pc: pc, out: o}
		if pkt, ok := o.(core.PacketConsumer); ok && pkt.ConsumesPackets() {
			e.packetOutputs = append(e.packetOutputs, r)
		} else {
			e.recordOutputs = append(e.recordOutputs, r)
		}
	}
	if len(cfg.Outputs) == 0 {
		return nil, fmt.Errorf("%s: no outputs configured: add an [[outputs.print]] or another output", cfg.File)
	}
	procs, err := orderProcessors(cfg, len(e.recordOutputs) > 0)
	if err != nil {
		return nil, err
	}
	for _, pc := range procs {
		p, ok := pc.Plugin.(core.Processor)
		if !ok {
			return nil, fmt.Errorf("%s: plugin does not implement a processor", pc.Where())
		}
		e.processors = append(e.processors, &processorRunner{pc: pc, proc: p})
	}
	for _, pc := range cfg.Inputs {
		in, ok := pc.Plugin.(core.Input)
		if !ok {
			return nil, fmt.Errorf("%s: plugin does not implement an input", pc.Where())
		}
		e.inputs = append(e.inputs, &inputRunner{pc: pc, in: in})
	}

	// Initialize in pipeline order, giving each plugin its environment.
	// Initialize in pipeline order, giving each plugin its environment.
	// Outputs learn the primitives of the last processor that declares them.
	var primitives []string
	for _, r := range e.inputs {
		r.m = e.pluginMetrics(r.pc)
		if err := e.initPlugin(r.pc, r.m, nil); err != nil {
			return nil, err
		}
	}
	for _, r := range e.processors {
		r.m = e.pluginMetrics(r.pc)
		if err := e.initPlugin(r.pc, r.m, nil); err != nil {
			return nil, err
		}
		if s, ok := r.proc.(core.SchemaProvider); ok {
			primitives = s.OutputPrimitives()
		}
	}
	for _, r := range e.packetOutputs {
		r.m = e.pluginMetrics(r.pc)
		r.log = log.With("output", r.pc.DisplayName())
		if err := e.initPlugin(r.pc, r.m, nil); err != nil {
			return nil, err
		}
	}
	for _, r := range e.recordOutputs {
		r.m = e.pluginMetrics(r.pc)
		r.log = log.With("output", r.pc.DisplayName())
		if err := e.initPlugin(r.pc, r.m, primitives); err != nil {
			return nil, err
		}
	}
	e.checkAcks()
	e.watchLoss()
	return e, nil
}

// initPlugin calls the plugin's Init, if it has one, with its environment.
// The error names the plugin once, by its config location.
func (e *Engine) initPlugin(pc config.PluginConfig, m *metrics.Plugin, primitives []string) error {
	init, ok := pc.Plugin.(core.Initializer)
	if !ok {
		return nil
	}
	env := &core.Env{
		DataDir:    e.agent.DataDir,
		BatchSize:  e.agent.BatchSize,
		Name:       pc.DisplayName(),
		Logger:     e.log.With(string(pc.Kind[:len(pc.Kind)-1]), pc.DisplayName()),
		Metrics:    m.Registerer,
		HTTP:       e.reg,
		Primitives: primitives,
	}
	if err := init.Init(env); err != nil {
		var located *config.Error
		if errors.As(err, &located) {
			return err // it names its file, line and key already
		}
		return fmt.Errorf("%s: %w", pc.Where(), err)
	}
	if w, ok := pc.Plugin.(core.Warner); ok {
		for _, msg := range w.Warnings() {
			e.warnings = append(e.warnings, pc.Where()+": "+msg)
			e.log.Warn(msg, "plugin", pc.Where())
		}
	}
	return nil
}

// orderProcessors puts the template processor first (inserting it when some
// output consumes records) and rejects processors that nothing would read.
func orderProcessors(cfg *config.Config, recordOutputs bool) ([]config.PluginConfig, error) {
	var tmpl *config.PluginConfig
	var rest []config.PluginConfig
	for i, pc := range cfg.Processors {
		if pc.Name == TemplatesProcessor && tmpl == nil {
			tmpl = &cfg.Processors[i]
			continue
		}
		rest = append(rest, pc)
	}
	if !recordOutputs {
		if len(cfg.Processors) > 0 {
			return nil, fmt.Errorf("%s: processors are configured but no output consumes records (a replicator needs no processors)", cfg.Processors[0].Where())
		}
		return nil, nil
	}
	if tmpl == nil {
		p, ok := registry.Lookup(registry.Processors, TemplatesProcessor)
		if !ok {
			return nil, errors.New("engine: the templates processor is not compiled in")
		}
		tmpl = &config.PluginConfig{Kind: registry.Processors, Name: TemplatesProcessor, File: "(automatic)", Plugin: p.Factory()}
	}
	return append([]config.PluginConfig{*tmpl}, rest...), nil
}

func (e *Engine) pluginMetrics(pc config.PluginConfig) *metrics.Plugin {
	return e.reg.Plugin(string(pc.Kind), pc.Name, pc.Alias)
}

// Healthy reports whether the pipeline runs: used by /healthz.
func (e *Engine) Healthy() error {
	if !e.ready.Load() {
		return errors.New("pipeline not running")
	}
	return nil
}

// recordDepth bounds the queue in front of a processor that takes another
// processor's output: records take about 264 bytes a flow where the
// datagrams they came from take 50, so a backlog (an aggregate slower for
// a moment than the decoder) is better kept as datagrams in the first
// queue, where the memory budget holds five times more flows.
const recordDepth = 4

// processorDepth is the input queue depth of processor i.
func processorDepth(i, depth int) int {
	if i == 0 {
		return depth
	}
	return min(depth, recordDepth)
}

// Run starts the pipeline and blocks until ctx is cancelled, then shuts down
// in order. Closing force (a second signal) abandons what is still in flight.
// It returns nil after a clean shutdown; after a forced or timed-out one it
// returns an error that says what was lost.
func (e *Engine) Run(ctx context.Context, force <-chan struct{}) error {
	if e.agent.MetricsAddress != "" {
		mctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := e.reg.Serve(mctx, e.agent.MetricsAddress, e.agent.Pprof, e.Healthy); err != nil {
			return err
		}
	}
	depth := e.agent.ChannelBatches
	if depth <= 0 {
		depth = 64
	}
	e.packets = make(chan *core.Batch, depth)

	// Outputs first, then processors from the last to the first, so that every
	// stage has its reader before it gets data.
	var stages sync.WaitGroup
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	for _, o := range append(append([]*outputRunner{}, e.packetOutputs...), e.recordOutputs...) {
		o.in = make(chan *core.Batch, depth)
		if err := o.connect(runCtx); err != nil {
			return fmt.Errorf("%s: %w", o.pc.Where(), err)
		}
	}
	for _, o := range append(append([]*outputRunner{}, e.packetOutputs...), e.recordOutputs...) {
		stages.Add(1)
		go func(o *outputRunner) { defer stages.Done(); o.run(runCtx) }(o)
	}
	next := fanout(e.recordOutputs)
	for i := len(e.processors) - 1; i >= 0; i-- {
		p := e.processors[i]
		p.in = make(chan *core.Batch, processorDepth(i, depth))
		p.next = next
		p.log = e.log.With("processor", p.pc.DisplayName())
		stages.Add(1)
		go func(p *processorRunner) { defer stages.Done(); p.run(runCtx) }(p)
		ch := p.in
		next = stage{send: func(b *core.Batch) { ch <- b }, close: func() { close(ch) }}
	}
	var packetTargets []*outputRunner
	packetTargets = append(packetTargets, e.packetOutputs...)
	router := fanout(packetTargets)
	if len(e.processors) > 0 {
		first := e.processors[0].in
		router = combine(router, stage{send: func(b *core.Batch) { first <- b }, close: func() { close(first) }})
	}
	stages.Add(1)
	go func() {
		defer stages.Done()
		for b := range e.packets {
			router.send(b)
		}
		router.close()
	}()

	// Inputs last.
	inCtx, stopInputs := context.WithCancel(ctx)
	defer stopInputs()
	var inputs sync.WaitGroup
	inputErr := make(chan error, len(e.inputs))
	for _, in := range e.inputs {
		if l, ok := in.in.(core.Listener); ok {
			if err := l.Listen(inCtx); err != nil {
				e.log.Error("input cannot listen; shutting down", "input", in.pc.DisplayName(), "err", err)
				return errors.Join(fmt.Errorf("%s: %w", in.pc.Where(), err), e.shutdown(stopInputs, &inputs, &stages, force, cancelRun))
			}
		}
	}
	for _, in := range e.inputs {
		in.log = e.log.With("input", in.pc.DisplayName())
		inputs.Add(1)
		go func(in *inputRunner) {
			defer inputs.Done()
			if err := in.in.Start(inCtx, in.emit(inCtx, e.packets)); err != nil && inCtx.Err() == nil {
				inputErr <- fmt.Errorf("%s: %w", in.pc.Where(), err)
			}
		}(in)
	}
	// Inputs that come to an end (a replay, an external plugin whose stream
	// is done) end the run once all of them have.
	allInputsDone := make(chan struct{})
	go func() { inputs.Wait(); close(allInputsDone) }()
	lossCtx, stopLoss := context.WithCancel(context.Background())
	defer stopLoss()
	go e.loss.run(lossCtx, e.budget)
	limit := e.budget.limitHeap()
	e.log.Info("memory budget", "max_buffer", core.Size(e.budget.max).String(), "inputs_drop_beyond", core.Size(e.budget.queueLimit()).String(), "go_memory_limit", core.Size(limit).String())
	e.ready.Store(true)
	e.log.Info("pipeline running", "inputs", len(e.inputs), "processors", len(e.processors),
		"outputs", len(e.packetOutputs)+len(e.recordOutputs))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-inputErr:
		e.log.Error("input failed; shutting down", "err", runErr)
	case <-allInputsDone:
		select {
		case runErr = <-inputErr:
			e.log.Error("input failed; shutting down", "err", runErr)
		default:
			e.log.Info("every input finished; shutting down")
		}
	}
	e.ready.Store(false)
	return errors.Join(runErr, e.shutdown(stopInputs, &inputs, &stages, force, cancelRun))
}

// shutdown stops the inputs and lets every stage drain in order.
func (e *Engine) shutdown(stopInputs context.CancelFunc, inputs, stages *sync.WaitGroup, force <-chan struct{}, cancelRun context.CancelFunc) error {
	start := time.Now()
	e.log.Info("shutting down: stopping inputs")
	stopInputs()
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	for _, in := range e.inputs {
		if err := in.in.Stop(stopCtx); err != nil {
			e.log.Warn("input stop", "input", in.pc.DisplayName(), "err", err)
		}
	}
	cancel()
	inputs.Wait()
	close(e.packets)

	done := make(chan struct{})
	go func() { stages.Wait(); close(done) }()
	timeout := time.Duration(e.agent.ShutdownTimeout)
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var why string
	select {
	case <-done:
		e.loss.report(time.Now())
		e.log.Info("shutdown complete: every aggregate and buffer flushed", append([]any{"took", time.Since(start).Round(time.Millisecond)}, e.loss.totals()...)...)
		return nil
	case <-force:
		why = "second signal"
	case <-timer.C:
		why = fmt.Sprintf("shutdown_timeout %s passed", timeout)
	}
	cancelRun()
	lost := e.inFlight()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	e.loss.report(time.Now())
	e.log.Error("shutdown forced", e.loss.totals()...)
	return fmt.Errorf("forced shutdown (%s): lost %d packets and %d records still queued, and whatever processors held unflushed", why, lost.packets, lost.records)
}

type lostCount struct{ packets, records int }

// inFlight drains every stage channel without blocking and counts what was in it.
func (e *Engine) inFlight() lostCount {
	var l lostCount
	drain := func(ch chan *core.Batch) {
		for {
			select {
			case b, ok := <-ch:
				if !ok || b == nil {
					return
				}
				l.packets += len(b.Packets)
				l.records += len(b.Records)
			default:
				return
			}
		}
	}
	for _, p := range e.processors {
		drain(p.in)
	}
	for _, o := range append(append([]*outputRunner{}, e.packetOutputs...), e.recordOutputs...) {
		drain(o.in)
	}
	return l
}

// stage is where a runner sends its batches.
type stage struct {
	send  func(*core.Batch)
	close func()
}

// fanout sends each batch to every output, shared read-only.
func fanout(outs []*outputRunner) stage {
	switch len(outs) {
	case 0:
		return stage{send: func(b *core.Batch) { b.Release() }, close: func() {}}
	case 1:
		ch := outs[0].in
		return stage{send: func(b *core.Batch) { ch <- b }, close: func() { close(ch) }}
	}
	return stage{
		send: func(b *core.Batch) {
			b.Retain(len(outs) - 1)
			for _, o := range outs {
				o.in <- b
			}
		},
		close: func() {
			for _, o := range outs {
				close(o.in)
			}
		},
	}
}

// combine sends each batch to both stages.
func combine(a, b stage) stage {
	return stage{
		send:  func(x *core.Batch) { x.Retain(1); a.send(x); b.send(x) },
		close: func() { a.close(); b.close() },
	}
}
