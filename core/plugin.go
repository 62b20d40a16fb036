package core

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Emit hands a batch to the next stage, which takes ownership of it.
type Emit func(*Batch)

// Input produces packets. Start runs until ctx is cancelled or Stop is
// called, handing every batch to emit; it must not block on a slow pipeline
// (emit never blocks: it reports false when the batch was dropped, and the
// input counts it).
type Input interface {
	Start(ctx context.Context, emit func(*Batch) bool) error
	Stop(ctx context.Context) error
}

// Listener is implemented by inputs that bind sockets: the engine calls
// Listen before it starts the inputs and says the pipeline runs, so that a
// port in use fails the start and no datagram arrives before the socket exists.
type Listener interface {
	Listen(ctx context.Context) error
}

// Processor transforms batches. Process owns in: it may modify it and pass it
// on through emit, pass on other batches, or release it. Flush is called once
// at shutdown after the last Process and emits everything still held (aggregates).
//
// The engine calls a processor from one goroutine at a time.
type Processor interface {
	Process(ctx context.Context, in *Batch, emit Emit) error
	Flush(ctx context.Context, emit Emit) error
}

// Ticker is implemented by processors that act on time as well as on data
// (the aggregate emits every refresh, the template store expires entries).
// The engine calls Tick from the same goroutine as Process.
type Ticker interface {
	TickEvery() time.Duration
	Tick(ctx context.Context, now time.Time, emit Emit) error
}

// Output consumes batches. Write must not modify the batch nor keep it after
// returning. Close flushes what the output buffers and releases its resources.
type Output interface {
	Connect(ctx context.Context) error
	Write(ctx context.Context, b *Batch) error
	Close(ctx context.Context) error
}

// Consumes says what an output (or processor) takes: packets, records or both.
type Consumes int

const (
	ConsumesRecords Consumes = iota
	ConsumesPackets
)

// PacketConsumer is implemented by outputs that take raw packets (the tee
// replicator) instead of decoded records.
type PacketConsumer interface {
	ConsumesPackets() bool
}

// Initializer is implemented by plugins that need the environment (data
// directory, logger, metrics) or want to validate their configuration after
// it was decoded. Errors returned from Init are reported with the plugin's
// config location.
type Initializer interface {
	Init(env *Env) error
}

// Env is what the engine gives a plugin at Init.
type Env struct {
	// DataDir is agent.data_dir: templates, embedded store, spool.
	DataDir string
	// BatchSize is agent.batch_size: how many records a full batch holds,
	// for plugins that build batches of their own.
	BatchSize int
	// Name is the plugin's alias if set, else its plugin name.
	Name   string
	Logger *slog.Logger
	// Metrics registers the plugin's domain metrics; the registerer already
	// adds the kind, plugin and alias labels.
	Metrics prometheus.Registerer
}
