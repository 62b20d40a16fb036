package duckdb

import (
	"errors"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
)

// A batch from a redelivering source (inputs.amqp) is stored once: its
// writer's highest sequence is kept with the rows, also across a reopen,
// and a batch at or below it is skipped.
func TestWriteFromSkipsRedelivered(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	recs := aggRecords(100, time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC), 1)
	want := sumRecs(recs)
	if _, err := s.WriteFrom(ctx, recs, core.Origin{Writer: "edge-1", Seq: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteFrom(ctx, recs, core.Origin{Writer: "edge-1", Seq: 10}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second write of seq 10: %v, want ErrDuplicate", err)
	}
	if _, err := s.WriteFrom(ctx, recs, core.Origin{Writer: "edge-1", Seq: 9}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("write of seq 9: %v, want ErrDuplicate", err)
	}
	// Another writer's sequences are its own.
	if _, err := s.WriteFrom(ctx, recs, core.Origin{Writer: "edge-2", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir)
	if _, err := s.WriteFrom(ctx, recs, core.Origin{Writer: "edge-1", Seq: 10}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("after reopen, seq 10: %v, want ErrDuplicate", err)
	}
	if _, err := s.WriteFrom(ctx, recs, core.Origin{Writer: "edge-1", Seq: 11}); err != nil {
		t.Fatal(err)
	}
	got := sums(t, s, "flows")
	want.rows, want.packets, want.bytes, want.flows = 3*want.rows, 3*want.packets, 3*want.bytes, 3*want.flows
	if got != want {
		t.Errorf("stored %+v, want %+v (three batches)", got, want)
	}
}
