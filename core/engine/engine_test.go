package engine

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/config"
	"github.com/flowline/flowline/core/metrics"
	"github.com/flowline/flowline/core/registry"
	dto "github.com/prometheus/client_model/go"
)

// testInput emits n batches of one packet each, then waits for the end.
type testInput struct {
	n       int
	emitted atomic.Int64
	dropped atomic.Int64
	stopped atomic.Bool
}

func (in *testInput) Start(ctx context.Context, emit func(*core.Batch) bool) error {
	for i := 0; i < in.n; i++ {
		b := core.NewBatch()
		b.Packets = append(b.Packets, core.Packet{Data: []byte{byte(i)}})
		if emit(b) {
			in.emitted.Add(1)
		} else {
			in.dropped.Add(1)
		}
	}
	<-ctx.Done()
	return nil
}

func (in *testInput) Stop(context.Context) error { in.stopped.Store(true); return nil }

// testDecoder turns each packet into one record with Packets = 1.
type testDecoder struct{}

func (testDecoder) Process(_ context.Context, in *core.Batch, emit core.Emit) error {
	out := core.NewBatch()
	for range in.Packets {
		r := out.AppendRecord()
		r.Packets, r.Bytes = 1, 100
	}
	in.Release()
	emit(out)
	return nil
}
func (testDecoder) Flush(context.Context, core.Emit) error { return nil }

// holdAll keeps every record until Flush, like an aggregate.
type holdAll struct{ held int }

func (h *holdAll) Process(_ context.Context, in *core.Batch, _ core.Emit) error {
	h.held += len(in.Records)
	in.Release()
	return nil
}

func (h *holdAll) Flush(_ context.Context, emit core.Emit) error {
	b := core.NewBatch()
	r := b.AppendRecord()
	r.Packets = uint64(h.held)
	emit(b)
	return nil
}

// testOutput sums the packets it is given; it fails the first failures writes.
type testOutput struct {
	mu       sync.Mutex
	packets  uint64
	writes   int
	failures int
	closed   bool
	raw      bool
	slow     time.Duration
}

func (o *testOutput) Connect(context.Context) error { return nil }
func (o *testOutput) Write(_ context.Context, b *core.Batch) error {
	time.Sleep(o.slow)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes++
	if o.failures > 0 {
		o.failures--
		return errors.New("server down")
	}
	for _, r := range b.Records {
		o.packets += r.Packets
	}
	o.packets += uint64(len(b.Packets))
	return nil
}
func (o *testOutput) Close(context.Context) error {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	return nil
}
func (o *testOutput) ConsumesPackets() bool { return o.raw }

func init() {
	registry.Register(registry.Processors, TemplatesProcessor, "", func() any { return testDecoder{} })
}

func pc(kind registry.Kind, name string, p any) config.PluginConfig {
	return config.PluginConfig{Kind: kind, Name: name, File: "test.toml", Line: 1, Plugin: p}
}

func newConfig(in core.Input, procs []any, outs ...core.Output) *config.Config {
	cfg := &config.Config{File: "test.toml", Agent: config.DefaultAgent()}
	cfg.Agent.MetricsAddress = ""
	cfg.Agent.ShutdownTimeout = core.Duration(5 * time.Second)
	cfg.Inputs = []config.PluginConfig{pc(registry.Inputs, "test", in)}
	for _, p := range procs {
		cfg.Processors = append(cfg.Processors, pc(registry.Processors, "hold", p))
	}
	for _, o := range outs {
		cfg.Outputs = append(cfg.Outputs, pc(registry.Outputs, "test", o))
	}
	return cfg
}

func runFor(t *testing.T, e *Engine, until func() bool) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, nil) }()
	deadline := time.Now().Add(5 * time.Second)
	for !until() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("engine did not stop")
		return nil
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestShutdownFlushesEveryStage: what a processor holds at shutdown reaches
// every output, and outputs are closed after it.
func TestShutdownFlushesEveryStage(t *testing.T) {
	in := &testInput{n: 50}
	a, b := &testOutput{}, &testOutput{}
	e, err := New(newConfig(in, []any{&holdAll{}}, a, b), quiet(), metrics.New())
	if err != nil {
		t.Fatal(err)
	}
	if got := e.processors[0].pc.Name; got != TemplatesProcessor {
		t.Fatalf("first processor = %s; the templates processor must be inserted first", got)
	}
	if err := runFor(t, e, func() bool { return in.emitted.Load()+in.dropped.Load() == 50 }); err != nil {
		t.Fatal(err)
	}
	if !in.stopped.Load() {
		t.Error("input was not stopped")
	}
	for i, o := range []*testOutput{a, b} {
		if o.packets != 50 || !o.closed {
			t.Errorf("output %d got %d packets (closed %v), want the 50 flushed at shutdown", i, o.packets, o.closed)
		}
	}
}

// TestPacketOutputsGetPacketsWithoutDecoding: a replicator (packet output
// only) has no processors, and processors without a record output are an error.
func TestPacketOutputsGetPacketsWithoutDecoding(t *testing.T) {
	in := &testInput{n: 20}
	tee := &testOutput{raw: true}
	e, err := New(newConfig(in, nil, tee), quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.processors) != 0 {
		t.Fatalf("a replicator got %d processors; it must decode nothing", len(e.processors))
	}
	if err := runFor(t, e, func() bool { tee.mu.Lock(); defer tee.mu.Unlock(); return tee.packets == 20 }); err != nil {
		t.Fatal(err)
	}
	if tee.packets != 20 {
		t.Fatalf("packet output got %d packets, want 20", tee.packets)
	}
	if _, err := New(newConfig(&testInput{}, []any{&holdAll{}}, &testOutput{raw: true}), quiet(), nil); err == nil || !strings.Contains(err.Error(), "no output consumes records") {
		t.Fatalf("processors without record outputs: err = %v", err)
	}
}

// TestFailingOutputRetriesWithoutLoss: writes that fail are retried, nothing is dropped.
func TestFailingOutputRetriesWithoutLoss(t *testing.T) {
	in := &testInput{n: 30}
	o := &testOutput{failures: 3}
	reg := metrics.New()
	e, err := New(newConfig(in, nil, o), quiet(), reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := runFor(t, e, func() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.packets == 30 }); err != nil {
		t.Fatal(err)
	}
	if o.packets != 30 || o.writes < 33 {
		t.Fatalf("output stored %d packets in %d writes; want 30 after 3 failed writes", o.packets, o.writes)
	}
	if got := counter(t, reg, "flowline_plugin_errors_total", "outputs"); got != 3 {
		t.Errorf("output errors counted = %v, want 3", got)
	}
}

// TestFullPipelineDropsAtInputAndCounts: the input never blocks; what the
// pipeline cannot take is counted as dropped by the input.
func TestFullPipelineDropsAtInputAndCounts(t *testing.T) {
	in := &testInput{n: 500}
	o := &testOutput{raw: true, slow: 2 * time.Millisecond}
	reg := metrics.New()
	cfg := newConfig(in, nil, o)
	cfg.Agent.ChannelBatches = 2
	e, err := New(cfg, quiet(), reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := runFor(t, e, func() bool { return in.emitted.Load()+in.dropped.Load() == 500 }); err != nil {
		t.Fatal(err)
	}
	if in.dropped.Load() == 0 {
		t.Fatal("nothing dropped with a 2-batch queue and a slow output; the input must not block")
	}
	if got := counter(t, reg, "flowline_plugin_dropped_total", "inputs"); got != float64(in.dropped.Load()) {
		t.Errorf("dropped metric = %v, input saw %d drops", got, in.dropped.Load())
	}
	if o.packets != uint64(in.emitted.Load()) {
		t.Errorf("output got %d packets, input had %d accepted", o.packets, in.emitted.Load())
	}
}

// TestForcedShutdownSaysWhatWasLost: a second signal abandons the output's queue.
func TestForcedShutdownSaysWhatWasLost(t *testing.T) {
	in := &testInput{n: 40}
	o := &testOutput{raw: true, slow: 200 * time.Millisecond}
	e, err := New(newConfig(in, nil, o), quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	force := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, force) }()
	for in.emitted.Load()+in.dropped.Load() < 40 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
	close(force)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "forced shutdown") || !strings.Contains(err.Error(), "packets") {
			t.Fatalf("forced shutdown returned %v; want an error saying what was lost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("forced shutdown did not return")
	}
}

func TestConfigErrorsNameThePlugin(t *testing.T) {
	if _, err := New(&config.Config{File: "x.toml"}, quiet(), nil); err == nil || !strings.Contains(err.Error(), "no inputs") {
		t.Errorf("no inputs: %v", err)
	}
	cfg := newConfig(&testInput{}, nil)
	if _, err := New(cfg, quiet(), nil); err == nil || !strings.Contains(err.Error(), "no outputs") {
		t.Errorf("no outputs: %v", err)
	}
}

func counter(t *testing.T, reg *metrics.Registry, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Prometheus().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "kind") == kind {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// listenFails is an input whose socket cannot be bound.
type listenFails struct{ testInput }

func (*listenFails) Listen(context.Context) error { return errors.New("address already in use") }

// TestListenFailureFailsTheStart: a port in use stops Run with an error
// naming the input, instead of a pipeline that runs without it.
func TestListenFailureFailsTheStart(t *testing.T) {
	e, err := New(newConfig(&listenFails{}, nil, &testOutput{raw: true}), quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background(), nil) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "test.toml:1") {
			t.Fatalf("Run = %v; want the listen error with the input's config location", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a listen failure")
	}
}
