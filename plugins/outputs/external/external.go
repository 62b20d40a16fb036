// Package external is outputs.external: an output that runs in a plugin
// process of its own, built with Flowline's SDK (package sdk) and spoken to
// over gRPC (see core/pluginrpc).
//
// Batches go to the plugin one at a time in the core/wire encoding, each
// with an id. A Write the plugin acknowledges is written. When the process
// dies, the next attempt restarts it (the engine's retry backoff spaces the
// restarts) and sends the same batch with the same id, so a plugin that
// remembers the last id it committed stores every batch exactly once. After
// max_retries failed attempts at one batch it is dropped, counted and logged.
package external

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/pluginrpc"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/core/wire"
	pb "github.com/flowline/flowline/internal/pluginpb"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Outputs, "external", sample, func() any {
		return &External{Spec: pluginrpc.DefaultSpec(), Consumes: "records"}
	})
}

// External is the output and its configuration.
type External struct {
	pluginrpc.Spec
	// Consumes is "records" (decoded flows) or "packets" (raw datagrams,
	// like the tee).
	Consumes string `toml:"consumes"`

	client   *pluginrpc.Client
	buf      []byte
	nextID   uint64
	current  *core.Batch // the batch being tried, to resend it with its id
	id       uint64
	attempts int
	broken   bool // the last call found the process gone
}

var (
	_ core.Output         = (*External)(nil)
	_ core.Initializer    = (*External)(nil)
	_ core.Validator      = (*External)(nil)
	_ core.PacketConsumer = (*External)(nil)
)

// Validate checks the keys Flowline reads itself; the plugin checks its
// config table at Init.
func (e *External) Validate() error {
	if e.Consumes != "records" && e.Consumes != "packets" {
		return fmt.Errorf("consumes = %q: want \"records\" or \"packets\"", e.Consumes)
	}
	return e.Spec.Validate()
}

// ConsumesPackets says whether the plugin takes raw datagrams.
func (e *External) ConsumesPackets() bool { return e.Consumes == "packets" }

// Init starts the plugin process and has it validate its configuration.
func (e *External) Init(env *core.Env) error {
	c, err := pluginrpc.Launch(e.Spec, string(registry.Outputs), env)
	if err != nil {
		return err
	}
	e.client = c
	if got := c.InitResponse().ConsumesPackets; got != e.ConsumesPackets() {
		c.Kill()
		return core.Permanent(fmt.Errorf("consumes = %q, but the plugin %q says it consumes packets: %v", e.Consumes, c.Info().Name, got))
	}
	// Ids grow across restarts of Flowline: a plugin that keeps the last id
	// it stored skips only true resends.
	e.nextID = uint64(time.Now().UnixNano())
	return nil
}

func (e *External) stub() pb.OutputClient { return pb.NewOutputClient(e.client.Conn()) }

// Connect asks the plugin to connect to its destination.
func (e *External) Connect(ctx context.Context) error {
	if e.broken || e.client.Exited() {
		if err := e.restart(ctx); err != nil {
			return err
		}
		e.broken = false
	}
	_, err := e.stub().Connect(ctx, &pb.Empty{})
	return pluginrpc.FromStatus(err)
}

// restart starts a dead plugin again and connects it.
func (e *External) restart(ctx context.Context) error {
	if err := e.client.Restart(ctx); err != nil {
		return err
	}
	_, err := e.stub().Connect(ctx, &pb.Empty{})
	return pluginrpc.FromStatus(err)
}

// Write sends the batch and returns when the plugin committed it.
func (e *External) Write(ctx context.Context, b *core.Batch) error {
	if b != e.current {
		e.nextID++
		e.current, e.id, e.attempts = b, e.nextID, 0
		if e.ConsumesPackets() {
			e.buf = wire.AppendPackets(e.buf[:0], e.id, b.Packets)
		} else {
			e.buf = wire.AppendRecords(e.buf[:0], e.id, b.Records)
		}
	}
	err := e.send(ctx)
	if err == nil {
		e.current = nil
		return nil
	}
	e.attempts++
	if e.attempts >= e.MaxRetries {
		e.current = nil
		return core.Permanent(fmt.Errorf("batch %d given up after %d attempts: %w", e.id, e.attempts, err))
	}
	return err
}

func (e *External) send(ctx context.Context) error {
	if e.broken || e.client.Exited() {
		if err := e.restart(ctx); err != nil {
			return fmt.Errorf("plugin process died; restart: %w", err)
		}
		e.broken = false
	}
	_, err := e.stub().Write(ctx, &pb.Batch{Id: e.id, Data: e.buf})
	if err != nil && pluginrpc.Broken(err) {
		e.broken = true
		return fmt.Errorf("plugin process gone during write: %w", err)
	}
	return pluginrpc.FromStatus(err)
}

// Close asks the plugin to flush and close, then ends the process.
func (e *External) Close(ctx context.Context) error {
	defer e.client.Kill()
	if e.client.Exited() {
		return nil
	}
	_, err := e.stub().Close(ctx, &pb.Empty{})
	return pluginrpc.FromStatus(err)
}
