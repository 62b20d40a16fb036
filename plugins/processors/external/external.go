// Package external is processors.external: a processor that runs in a
// plugin process of its own, built with Flowline's SDK (package sdk).
//
// Each batch makes a round trip: Flowline sends it in the core/wire
// encoding and gets back what the plugin emitted. The batch that came in is
// held until every batch that came out of it was written, so an input that
// acknowledges its source (AMQP) acknowledges only stored flows. When the
// process dies, it is restarted and the batch sent again with the same id,
// up to max_retries times with backoff; a batch given up is counted and
// logged. State the plugin held in memory (a plugin that aggregates) is lost
// with the process.
package external

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
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
	registry.Register(registry.Processors, "external", sample, func() any {
		return &External{Spec: pluginrpc.DefaultSpec()}
	})
}

// External is the processor and its configuration.
type External struct {
	pluginrpc.Spec

	client *pluginrpc.Client
	log    *slog.Logger
	tick   time.Duration
	buf    []byte
	nextID uint64
}

var (
	_ core.Processor   = (*External)(nil)
	_ core.Ticker      = (*External)(nil)
	_ core.Initializer = (*External)(nil)
	_ core.Validator   = (*External)(nil)
)

// Init starts the plugin process and has it validate its configuration.
func (e *External) Init(env *core.Env) error {
	c, err := pluginrpc.Launch(e.Spec, string(registry.Processors), env)
	if err != nil {
		return err
	}
	e.client, e.log = c, env.Logger
	e.tick = time.Duration(c.InitResponse().TickEveryNs)
	e.nextID = uint64(time.Now().UnixNano())
	return nil
}

// TickEvery is what the plugin asked for (0: it has no Tick).
func (e *External) TickEvery() time.Duration { return e.tick }

func (e *External) stub() pb.ProcessorClient { return pb.NewProcessorClient(e.client.Conn()) }

// call runs one request, restarting a dead process and retrying with
// backoff up to max_retries attempts.
func (e *External) call(ctx context.Context, what string, f func(pb.ProcessorClient) (*pb.ProcessResponse, error)) (*pb.ProcessResponse, error) {
	backoff := 100 * time.Millisecond
	var err error
	for attempt := 1; ; attempt++ {
		if e.client.Exited() {
			err = e.client.Restart(ctx)
		}
		if err == nil {
			var resp *pb.ProcessResponse
			resp, err = f(e.stub())
			if err == nil {
				return resp, nil
			}
			if !pluginrpc.Broken(err) {
				err = pluginrpc.FromStatus(err)
				if core.IsPermanent(err) {
					return nil, err
				}
			}
		}
		if attempt >= e.MaxRetries || ctx.Err() != nil {
			return nil, fmt.Errorf("%s given up after %d attempts: %w", what, attempt, err)
		}
		e.log.Warn("plugin call failed; retrying", "call", what, "attempt", attempt, "retry_in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// emitAll decodes the plugin's batches and emits them. in (may be nil) is
// held until every emitted batch is released, so that its acknowledgement
// waits for theirs.
func emitAll(resp *pb.ProcessResponse, in *core.Batch, emit core.Emit) error {
	var outs []*core.Batch
	for _, pbb := range resp.Batches {
		b, _, err := wire.Decode(pbb.Data)
		if err != nil {
			for _, o := range outs {
				o.Release()
			}
			return fmt.Errorf("the plugin returned a batch Flowline cannot read: %w", err)
		}
		outs = append(outs, b)
	}
	if in != nil {
		if len(outs) == 0 {
			in.Release() // absorbed
		} else {
			in.Retain(len(outs) - 1)
			for _, o := range outs {
				o.OnDone(func(ok bool) {
					if !ok {
						in.Fail()
					}
					in.Release()
				})
			}
		}
	}
	for _, o := range outs {
		emit(o)
	}
	return nil
}

// Process sends the batch to the plugin and emits what comes back.
func (e *External) Process(ctx context.Context, in *core.Batch, emit core.Emit) error {
	e.nextID++
	req := &pb.Batch{Id: e.nextID}
	e.buf = wire.Append(e.buf[:0], req.Id, in)
	req.Data = e.buf
	resp, err := e.call(ctx, "process", func(c pb.ProcessorClient) (*pb.ProcessResponse, error) { return c.Process(ctx, req) })
	if err != nil {
		in.Fail()
		in.Release()
		return err
	}
	if err := emitAll(resp, in, emit); err != nil {
		in.Fail()
		in.Release()
		return err
	}
	return nil
}

// Tick forwards the engine's tick.
func (e *External) Tick(ctx context.Context, now time.Time, emit core.Emit) error {
	resp, err := e.call(ctx, "tick", func(c pb.ProcessorClient) (*pb.ProcessResponse, error) {
		return c.Tick(ctx, &pb.TickRequest{NowUnixNano: now.UnixNano()})
	})
	if err != nil {
		return err
	}
	return emitAll(resp, nil, emit)
}

// Flush collects what the plugin still holds, then ends the process.
func (e *External) Flush(ctx context.Context, emit core.Emit) error {
	defer e.client.Kill()
	resp, err := e.call(ctx, "flush", func(c pb.ProcessorClient) (*pb.ProcessResponse, error) { return c.Flush(ctx, &pb.Empty{}) })
	if err != nil {
		return err
	}
	return emitAll(resp, nil, emit)
}
