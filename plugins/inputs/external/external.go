// Package external is inputs.external: an input that runs in a plugin
// process of its own, built with Flowline's SDK (package sdk). The plugin
// streams batches of packets (decoded by processors.templates as usual) or
// records; a slow pipeline slows the stream instead of losing batches.
//
// Each batch is acknowledged to the plugin once every output committed it
// (or gave it up), for plugins that acknowledge a source. When the process
// dies it is restarted, up to max_retries times in a row, and streams again;
// where it resumes is the plugin's business. When the plugin ends its stream
// (a replay that is done), the input is done.
package external

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
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
	registry.Register(registry.Inputs, "external", sample, func() any {
		return &External{Spec: pluginrpc.DefaultSpec()}
	})
}

// External is the input and its configuration.
type External struct {
	pluginrpc.Spec

	client   *pluginrpc.Client
	log      *slog.Logger
	acks     chan *pb.AckRequest
	stopOnce sync.Once
}

var (
	_ core.Input        = (*External)(nil)
	_ core.WaitingInput = (*External)(nil)
	_ core.Initializer  = (*External)(nil)
	_ core.Validator    = (*External)(nil)
)

// WaitsForPipeline is true: a plugin's stream can wait.
func (e *External) WaitsForPipeline() bool { return true }

// Init starts the plugin process and has it validate its configuration.
func (e *External) Init(env *core.Env) error {
	c, err := pluginrpc.Launch(e.Spec, string(registry.Inputs), env)
	if err != nil {
		return err
	}
	e.client, e.log = c, env.Logger
	e.acks = make(chan *pb.AckRequest, 1024)
	return nil
}

// Start streams the plugin's batches into the pipeline until the plugin
// ends its stream or ctx ends.
func (e *External) Start(ctx context.Context, emit func(*core.Batch) bool) error {
	defer e.client.Kill()
	ackCtx, stopAcks := context.WithCancel(context.Background())
	defer stopAcks()
	go e.sendAcks(ackCtx)
	failures := 0
	backoff := 100 * time.Millisecond
	for {
		err := e.stream(ctx, emit, &failures)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		failures++
		if failures >= e.MaxRetries {
			return fmt.Errorf("plugin failed %d times in a row: %w", failures, err)
		}
		e.log.Warn("plugin stream broke; restarting the process", "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
		if err := e.client.Restart(ctx); err != nil {
			e.log.Warn("plugin restart failed", "err", err)
		}
	}
}

// stream runs one Run call; nil means the plugin ended its stream.
func (e *External) stream(ctx context.Context, emit func(*core.Batch) bool, failures *int) error {
	conn := e.client.Conn()
	if conn == nil {
		return errors.New("plugin not running")
	}
	st, err := pb.NewInputClient(conn).Run(ctx, &pb.Empty{})
	if err != nil {
		return pluginrpc.FromStatus(err)
	}
	for {
		msg, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return pluginrpc.FromStatus(err)
		}
		*failures = 0
		b, _, err := wire.Decode(msg.Data)
		if err != nil {
			e.ack(msg.Id, false)
			e.log.Error("the plugin sent a batch Flowline cannot read; skipped", "err", err)
			continue
		}
		id := msg.Id
		b.OnDone(func(ok bool) { e.ack(id, ok) })
		emit(b)
	}
}

// ack queues an acknowledgement; sendAcks delivers them in order.
func (e *External) ack(id uint64, ok bool) {
	select {
	case e.acks <- &pb.AckRequest{Id: id, Ok: ok}:
	default:
		e.log.Warn("acknowledgement queue full; an ack to the plugin is lost", "batch", id)
	}
}

func (e *External) sendAcks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-e.acks:
			if conn := e.client.Conn(); conn != nil {
				_, _ = pb.NewInputClient(conn).Ack(ctx, a)
			}
		}
	}
}

// Stop asks the plugin to stop; its stream then ends.
func (e *External) Stop(ctx context.Context) error {
	var err error
	e.stopOnce.Do(func() {
		if conn := e.client.Conn(); conn != nil && !e.client.Exited() {
			_, err = pb.NewInputClient(conn).Stop(ctx, &pb.Empty{})
			err = pluginrpc.FromStatus(err)
		}
	})
	return err
}
