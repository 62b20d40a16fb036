package lifecycle

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
)

func TestValidate(t *testing.T) {
	ok := DefaultPolicy()
	ok.Rollups = []Rollup{{After: core.Duration(24 * time.Hour), History: core.Duration(time.Hour), Primitives: []string{"src_host", "proto"}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("default policy with a rollup: %v", err)
	}
	for d, want := range map[time.Duration]string{time.Hour: "1h", 24 * time.Hour: "1d", 15 * time.Minute: "15m", 90 * time.Minute: "90m", 30 * time.Second: "30s"} {
		if got := (Rollup{History: core.Duration(d)}).Name(); got != want {
			t.Errorf("rollup name for %s = %q, want %q", d, got, want)
		}
	}
	for name, mut := range map[string]func(*Policy){
		"negative":        func(p *Policy) { p.CompressAfter = -1 },
		"level":           func(p *Policy) { p.CompressLevel = 0 },
		"check":           func(p *Policy) { p.CheckEvery = 0 },
		"delete<compress": func(p *Policy) { p.DeleteAfter = core.Duration(time.Minute) },
		"rollup history":  func(p *Policy) { p.Rollups = []Rollup{{Primitives: []string{"proto"}}} },
		"rollup prim":     func(p *Policy) { p.Rollups = []Rollup{{History: 1, Primitives: []string{"bogus"}}} },
		"rollup dup": func(p *Policy) {
			r := Rollup{History: core.Duration(time.Hour), Primitives: []string{"proto"}}
			p.Rollups = []Rollup{r, r}
		},
	} {
		p := DefaultPolicy()
		mut(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, p)
		} else if !strings.Contains(err.Error(), "lifecycle") {
			t.Errorf("%s: error %q does not say lifecycle", name, err)
		}
	}
}

type countingCompactor struct{ passes atomic.Int32 }

func (c *countingCompactor) Compact(context.Context, time.Time, Policy) (Report, error) {
	c.passes.Add(1)
	return Report{CompressedRows: 1}, nil
}

func TestSchedulerRunsUntilStopped(t *testing.T) {
	c := &countingCompactor{}
	p := DefaultPolicy()
	p.CheckEvery = core.Duration(5 * time.Millisecond)
	s := Start(c, p, slog.New(slog.DiscardHandler))
	deadline := time.Now().Add(5 * time.Second)
	for c.passes.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	s.Stop()
	n := c.passes.Load()
	if n < 3 {
		t.Fatalf("%d passes in 5s with check_every 5ms", n)
	}
	time.Sleep(20 * time.Millisecond)
	if c.passes.Load() != n {
		t.Fatal("passes continued after Stop")
	}
}

func TestResolve(t *testing.T) {
	if p, err := Unset().Resolve(); p != nil || err != nil {
		t.Fatalf("nothing declared: %+v, %v; want no life cycle", p, err)
	}
	u := Unset()
	u.CompressAfter = 0 // compress_after = "0s": declared, and not the default
	p, err := u.Resolve()
	if err != nil || p == nil {
		t.Fatal(p, err)
	}
	d := DefaultPolicy()
	if p.CompressAfter != 0 || p.DeleteAfter != d.DeleteAfter || p.CheckEvery != d.CheckEvery || p.CompressLevel != d.CompressLevel {
		t.Fatalf("resolved %+v", p)
	}
	u = Unset()
	u.Rollups = []Rollup{{After: core.Duration(100 * 24 * time.Hour), History: core.Duration(time.Hour), Primitives: []string{"proto"}}}
	if _, err := u.Resolve(); err == nil || !strings.Contains(err.Error(), "rolled up") {
		t.Fatalf("a tier after delete_after: %v", err)
	}
	u.Rollups[0].After = core.Duration(time.Hour)
	p, err = u.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if p.TierDeleteAfter(p.Rollups[0]) != d.DeleteAfter {
		t.Fatal("a tier without delete_after takes the policy's")
	}
	p.Rollups[0].DeleteAfter = core.Duration(365 * 24 * time.Hour)
	if p.TierDeleteAfter(p.Rollups[0]) != p.Rollups[0].DeleteAfter {
		t.Fatal("a tier's own delete_after")
	}
}
