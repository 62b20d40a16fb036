package sdk_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/sdk"
)

// sum is an output that keeps the last batch id and sums packets; it skips
// resends.
type sum struct {
	Scale   uint64 `toml:"scale"`
	packets uint64
	lastID  uint64
}

func (s *sum) Connect(context.Context) error { return nil }
func (s *sum) Close(context.Context) error   { return nil }
func (s *sum) Write(_ context.Context, b *sdk.Batch) error {
	if b.ID <= s.lastID {
		return nil
	}
	s.lastID = b.ID
	for i := range b.Records {
		s.packets += b.Records[i].Packets * s.Scale
	}
	return nil
}

// doubler is a processor that emits each batch twice over Tick.
type doubler struct{ held []sdk.Record }

func (d *doubler) Process(_ context.Context, b *sdk.Batch, emit sdk.Emit) error {
	d.held = append(d.held, b.Records...)
	emit(b)
	return nil
}
func (d *doubler) Flush(context.Context, sdk.Emit) error { return nil }
func (d *doubler) TickEvery() time.Duration              { return time.Second }
func (d *doubler) Tick(_ context.Context, _ time.Time, emit sdk.Emit) error {
	b := sdk.NewBatch()
	b.Records = append(b.Records, d.held...)
	d.held = nil
	emit(b)
	return nil
}

func recs(n int) []sdk.Record {
	out := make([]sdk.Record, n)
	for i := range out {
		out[i] = sdk.Record{SrcAddr: netip.MustParseAddr("10.0.0.1"), Packets: uint64(i + 1), Present: sdk.FieldSrcAddr | sdk.FieldPackets,
			Ext: []sdk.Extension{{Enterprise: 9, Type: 1, Value: []byte("x")}}}
	}
	return out
}

func TestOutputHarness(t *testing.T) {
	h, err := sdk.NewHarness(func() sdk.Output { return &sum{Scale: 1} }, "scale = 10", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Write(recs(3)); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteID(1, recs(3)); err != nil { // an old id: skipped
		t.Fatal(err)
	}
	if got := h.Plugin.(*sum).packets; got != 60 {
		t.Fatalf("packets %d, want 60 (the config's scale, the resend skipped)", got)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.NewHarness(func() sdk.Output { return &sum{} }, "scael = 1", t.TempDir()); err == nil || !strings.Contains(err.Error(), `unknown key "scael"`) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestProcessorHarness(t *testing.T) {
	h, err := sdk.NewHarness(func() sdk.Processor { return &doubler{} }, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.Process(recs(2))
	if err != nil || len(out) != 2 || string(out[1].Ext[0].Value) != "x" {
		t.Fatalf("process: %v %+v", err, out)
	}
	out, err = h.Tick(time.Now())
	if err != nil || len(out) != 2 || out[1].Packets != 2 {
		t.Fatalf("tick: %v %+v", err, out)
	}
	if out, err := h.Flush(); err != nil || len(out) != 0 {
		t.Fatalf("flush: %v %+v", err, out)
	}
}

func TestRegisterInProcess(t *testing.T) {
	sdk.RegisterOutput(sdk.Plugin{Name: "sdk_test_sum", Sample: "[[outputs.sdk_test_sum]]\n"}, func() sdk.Output { return &sum{} })
	p, ok := registry.Lookup(registry.Outputs, "sdk_test_sum")
	if !ok {
		t.Fatal("not registered")
	}
	if _, ok := p.Factory().(*sum); !ok {
		t.Fatalf("factory returned %T", p.Factory())
	}
}
