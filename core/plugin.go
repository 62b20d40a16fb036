package core

import (
	"context"
	"io"
	"log/slog"
	"net/http"
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

// WaitingInput is implemented by inputs whose source can wait (a message
// queue, a file replay, an external plugin) rather than lose data: when
// WaitsForPipeline reports true, the engine's emit blocks until the pipeline
// takes the batch (or the input is stopped) instead of dropping it.
type WaitingInput interface {
	WaitsForPipeline() bool
}

// AckingInput is implemented by inputs that acknowledge their source only
// when a batch is done (core.Batch.OnDone) and whose source redelivers what
// was not acknowledged (inputs.amqp). The engine warns when a processor that
// absorbs records (an aggregate) stands between such an input and the
// outputs: the acknowledgement then comes at absorption, not at commit.
type AckingInput interface {
	AcksWhenDone() bool
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

// PacketConsumer is implemented by outputs that take raw packets (the tee
// replicator) instead of decoded records.
type PacketConsumer interface {
	ConsumesPackets() bool
}

// Initializer is implemented by plugins that need the environment (data
// directory, logger, metrics, the pipeline's primitives) or check their
// configuration against it. The engine calls Init once, after the config was
// decoded and validated and before anything starts, with a non-nil Env.
// Errors returned from Init are reported once, prefixed with the plugin's
// config location ("file.toml:12: outputs.mysql: ..."), so they should not
// repeat the plugin's name.
type Initializer interface {
	Init(env *Env) error
}

// Validator is implemented by plugins that check their configuration on its
// own, without the environment. The config loader calls Validate right after
// decoding the plugin's table, so `flowline config check` reports the error
// with the table's file and line.
type Validator interface {
	Validate() error
}

// Warner is implemented by plugins whose valid configuration may still be
// unwise (outputs.influxdb with an address as a tag: unbounded series). The
// engine asks after Init, logs each warning at start, and `flowline config
// check` prints them; a warning never stops the start. Each says what it
// costs and what to do instead, without the plugin's name (the engine
// prefixes "file:line: kind.name: ").
type Warner interface {
	Warnings() []string
}

// SchemaProvider is implemented by processors that decide the shape of the
// records they emit: the aggregate emits records keyed by its primitives.
// The engine passes the primitives of the last such processor upstream of
// the outputs to every output in Env.Primitives.
type SchemaProvider interface {
	OutputPrimitives() []string
}

// HTTPMux serves a plugin's HTTP endpoints (outputs.duckdb's query API) on
// the agent's metrics address. Paths start with /api/.
type HTTPMux interface {
	Handle(path string, h http.Handler)
}

// Env is what the engine gives a plugin at Init. Every field is set: a
// plugin never needs to check for nil.
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
	// HTTP registers endpoints on the metrics address (a no-op when the
	// agent serves none).
	HTTP HTTPMux
	// Primitives are the aggregation primitives (pmacct names) of the
	// records an output receives, as the nearest SchemaProvider upstream
	// declared them; nil when records arrive unaggregated. Only outputs get it.
	Primitives []string
}

// NewEnv returns an environment for a plugin used outside the engine (tests,
// the SDK's harness, the CLI): a logger that discards, a private metrics
// registry, and no HTTP endpoints.
func NewEnv(name, dataDir string) *Env {
	return &Env{
		DataDir:   dataDir,
		BatchSize: 1024,
		Name:      name,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:   prometheus.NewRegistry(),
		HTTP:      NoHTTP{},
	}
}

// NoHTTP is an HTTPMux that serves nothing.
type NoHTTP struct{}

// Handle ignores the endpoint.
func (NoHTTP) Handle(string, http.Handler) {}
