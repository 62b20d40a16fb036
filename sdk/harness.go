package sdk

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/wire"
)

// Harness runs a plugin in memory for its tests: the configuration is
// decoded, validated and initialised as in a real run, and every batch goes
// through the same wire encoding as between Flowline and a plugin process,
// so what the plugin sees is what it will see in production. No process, no
// gRPC.
//
//	h, err := sdk.NewHarness(func() sdk.Output { return &JSONL{} }, `path = "out.jsonl"`, t.TempDir())
//	err = h.Write(records)      // one batch, with a fresh Batch.ID
//	err = h.Close()
type Harness[P any] struct {
	// Plugin is the configured plugin value.
	Plugin P
	// Env is the environment it was given (its Logger discards).
	Env *Env

	nextID uint64
}

// NewHarness configures a plugin from factory with the TOML text of its
// `config` table, gives it an environment whose data directory is dataDir,
// and connects it if it is an output.
func NewHarness[P any](factory func() P, configTOML, dataDir string) (*Harness[P], error) {
	env := core.NewEnv("harness", dataDir)
	p, errs := newInstance(func() any { return factory() }, configTOML, env)
	if len(errs) > 0 {
		all := make([]error, len(errs))
		for i, e := range errs {
			all[i] = e
		}
		return nil, errors.Join(all...)
	}
	h := &Harness[P]{Plugin: p.(P), Env: env, nextID: uint64(time.Now().UnixNano())}
	if o, ok := p.(core.Output); ok {
		if err := o.Connect(context.Background()); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// roundTrip encodes records as Flowline would send them and decodes them
// into a new batch with id.
func roundTrip(recs []Record, id uint64) (*core.Batch, error) {
	b := core.NewBatch()
	if _, err := wire.DecodeRecords(b, wire.AppendRecords(nil, id, recs)); err != nil {
		b.Release()
		return nil, err
	}
	b.ID = id
	return b, nil
}

// Write hands recs to an output as one batch with a new id.
func (h *Harness[P]) Write(recs []Record) error {
	h.nextID++
	return h.WriteID(h.nextID, recs)
}

// WriteID hands recs to an output as one batch with the given id (to test a
// resend: the same id twice).
func (h *Harness[P]) WriteID(id uint64, recs []Record) error {
	o, ok := any(h.Plugin).(core.Output)
	if !ok {
		return errors.New("sdk harness: the plugin is not an output")
	}
	b, err := roundTrip(recs, id)
	if err != nil {
		return err
	}
	defer b.Release()
	return o.Write(context.Background(), b)
}

// Close closes an output.
func (h *Harness[P]) Close() error {
	if o, ok := any(h.Plugin).(core.Output); ok {
		return o.Close(context.Background())
	}
	return nil
}

// collected gathers what a processor emits, decoded as Flowline would.
func collected(f func(core.Emit) error) ([]Record, error) {
	var out []Record
	var decodeErr error
	emit := func(b *core.Batch) {
		if b == nil {
			return
		}
		back := core.NewBatch()
		if _, err := wire.DecodeRecords(back, wire.AppendRecords(nil, b.ID, b.Records)); err != nil && decodeErr == nil {
			decodeErr = err
		}
		out = append(out, back.Records...)
		for i := range out[len(out)-len(back.Records):] {
			r := &out[len(out)-len(back.Records)+i]
			r.Ext = append([]Extension(nil), r.Ext...) // the arena goes back to the pool
			for j := range r.Ext {
				r.Ext[j].Value = append([]byte(nil), r.Ext[j].Value...)
			}
		}
		back.Release()
		b.Release()
	}
	if err := f(emit); err != nil {
		return out, err
	}
	return out, decodeErr
}

func (h *Harness[P]) processor() (core.Processor, error) {
	p, ok := any(h.Plugin).(core.Processor)
	if !ok {
		return nil, errors.New("sdk harness: the plugin is not a processor")
	}
	return p, nil
}

// Process hands recs to a processor as one batch and returns the records it
// emitted.
func (h *Harness[P]) Process(recs []Record) ([]Record, error) {
	p, err := h.processor()
	if err != nil {
		return nil, err
	}
	h.nextID++
	b, err := roundTrip(recs, h.nextID)
	if err != nil {
		return nil, err
	}
	return collected(func(emit core.Emit) error { return p.Process(context.Background(), b, emit) })
}

// Tick calls a processor's Tick (if it has one) and returns what it emitted.
func (h *Harness[P]) Tick(now time.Time) ([]Record, error) {
	p, err := h.processor()
	if err != nil {
		return nil, err
	}
	t, ok := p.(core.Ticker)
	if !ok {
		return nil, nil
	}
	return collected(func(emit core.Emit) error { return t.Tick(context.Background(), now, emit) })
}

// Flush calls a processor's Flush and returns what it emitted.
func (h *Harness[P]) Flush() ([]Record, error) {
	p, err := h.processor()
	if err != nil {
		return nil, err
	}
	return collected(func(emit core.Emit) error { return p.Flush(context.Background(), emit) })
}

// Run starts an input, collects every batch it emits until it returns, ctx
// ends or max batches arrived, and stops it. Packets and records come back
// as the pipeline would receive them.
func (h *Harness[P]) Run(ctx context.Context, max int) ([]*Batch, error) {
	in, ok := any(h.Plugin).(core.Input)
	if !ok {
		return nil, errors.New("sdk harness: the plugin is not an input")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if l, ok := in.(core.Listener); ok {
		if err := l.Listen(ctx); err != nil {
			return nil, err
		}
	}
	var mu sync.Mutex
	var out []*Batch
	emit := func(b *core.Batch) bool {
		back, _, err := wire.Decode(wire.Append(nil, 0, b))
		b.Release()
		if err != nil {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		out = append(out, back)
		if max > 0 && len(out) >= max {
			cancel()
		}
		return true
	}
	err := in.Start(ctx, emit)
	stopCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if serr := in.Stop(stopCtx); err == nil {
		err = serr
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	mu.Lock()
	defer mu.Unlock()
	return out, err
}
