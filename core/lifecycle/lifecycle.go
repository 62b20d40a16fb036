// Package lifecycle is the data life cycle any storage output can offer: hot
// rows are moved to compressed storage after compress_after, optionally
// rolled up into coarser bins with fewer keys, and deleted after
// delete_after. The policy is declared per output:
//
//	[outputs.duckdb.lifecycle]
//	  compress_after = "1h"
//	  compress_level = 9
//	  delete_after   = "90d"
//	  check_every    = "1m"
//	  [[outputs.duckdb.lifecycle.rollup]]
//	    after = "24h"
//	    history = "1h"
//	    primitives = ["src_host", "dst_host", "proto"]
//
// A storage output implements Compactor; the Scheduler calls it every
// check_every while the output runs, and `flowline compact --now` calls it once.
package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/flowline/flowline/core"
)

// Rollup is one coarser tier: rows older than After are re-aggregated into
// History bins keyed by Primitives only (pmacct names).
type Rollup struct {
	After      core.Duration `toml:"after"`
	History    core.Duration `toml:"history"`
	Primitives []string      `toml:"primitives"`
	// DeleteAfter removes the tier's data older than this; 0 takes the
	// policy's delete_after. A tier usually lives longer than the raw rows.
	DeleteAfter core.Duration `toml:"delete_after"`
}

// Name is the tier's table or view suffix in the largest whole unit: "1h"
// for a one-hour history, "1d", "15m", "30s".
func (r Rollup) Name() string {
	d := time.Duration(r.History)
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d >= u.d && d%u.d == 0 {
			return fmt.Sprintf("%d%s", d/u.d, u.name)
		}
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// Policy says when rows are compressed, rolled up and deleted.
type Policy struct {
	// CompressAfter moves hot rows whose time bin is older than this to
	// compressed storage; 0 moves every row at each pass (an output without
	// a lifecycle table keeps its rows hot).
	CompressAfter core.Duration `toml:"compress_after"`
	// CompressLevel is the zstd level (1-22) where the store uses zstd.
	CompressLevel int `toml:"compress_level"`
	// DeleteAfter removes data whose time bin is older than this; 0 keeps it forever.
	DeleteAfter core.Duration `toml:"delete_after"`
	// CheckEvery is how often the scheduler runs a pass.
	CheckEvery core.Duration `toml:"check_every"`
	Rollups    []Rollup      `toml:"rollup"`
}

// DefaultPolicy is the policy of an output that declares a lifecycle table
// without some keys: compress after 1h at zstd level 9, delete after 90
// days, check every minute.
func DefaultPolicy() Policy {
	return Policy{
		CompressAfter: core.Duration(time.Hour),
		CompressLevel: 9,
		DeleteAfter:   core.Duration(90 * 24 * time.Hour),
		CheckEvery:    core.Duration(time.Minute),
	}
}

// NotSet marks a policy key the configuration did not declare: an output
// starts its lifecycle field from Unset(), decodes its table into it, and
// calls Resolve.
const NotSet = -1

// Unset is a policy with every scalar key NotSet.
func Unset() Policy {
	return Policy{CompressAfter: NotSet, CompressLevel: NotSet, DeleteAfter: NotSet, CheckEvery: NotSet}
}

// Resolve turns a policy decoded over Unset() into the effective one: nil
// when no key was declared (the output has no life cycle); keys left out take
// DefaultPolicy's values. The result is validated.
func (p Policy) Resolve() (*Policy, error) {
	if p.CompressAfter == NotSet && p.DeleteAfter == NotSet && p.CheckEvery == NotSet && p.CompressLevel == NotSet && p.Rollups == nil {
		return nil, nil
	}
	d := DefaultPolicy()
	if p.CompressAfter == NotSet {
		p.CompressAfter = d.CompressAfter
	}
	if p.DeleteAfter == NotSet {
		p.DeleteAfter = d.DeleteAfter
	}
	if p.CheckEvery == NotSet {
		p.CheckEvery = d.CheckEvery
	}
	if p.CompressLevel == NotSet {
		p.CompressLevel = d.CompressLevel
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// TierDeleteAfter is how long tier r keeps its data: its own delete_after,
// else the policy's.
func (p Policy) TierDeleteAfter(r Rollup) core.Duration {
	if r.DeleteAfter > 0 {
		return r.DeleteAfter
	}
	return p.DeleteAfter
}

// Validate checks the policy's values against each other.
func (p Policy) Validate() error {
	if p.CompressAfter < 0 || p.DeleteAfter < 0 {
		return fmt.Errorf("lifecycle: compress_after and delete_after must not be negative")
	}
	if p.CompressLevel < 1 || p.CompressLevel > 22 {
		return fmt.Errorf("lifecycle: compress_level = %d: want 1 to 22", p.CompressLevel)
	}
	if p.CheckEvery <= 0 {
		return fmt.Errorf("lifecycle: check_every must be positive")
	}
	if p.DeleteAfter > 0 && p.DeleteAfter < p.CompressAfter {
		return fmt.Errorf("lifecycle: delete_after (%s) is shorter than compress_after (%s)", p.DeleteAfter, p.CompressAfter)
	}
	seen := map[string]bool{}
	for i, r := range p.Rollups {
		where := fmt.Sprintf("lifecycle.rollup[%d]", i)
		if r.History <= 0 {
			return fmt.Errorf("%s: history must be positive", where)
		}
		if r.After < 0 {
			return fmt.Errorf("%s: after must not be negative", where)
		}
		if len(r.Primitives) == 0 {
			return fmt.Errorf("%s: primitives: at least one is needed", where)
		}
		if _, err := core.PrimitiveMask(r.Primitives); err != nil {
			return fmt.Errorf("%s: primitives: %w", where, err)
		}
		if r.DeleteAfter < 0 {
			return fmt.Errorf("%s: delete_after must not be negative", where)
		}
		if p.DeleteAfter > 0 && r.After > p.DeleteAfter {
			return fmt.Errorf("%s: after (%s) is longer than delete_after (%s): rows would be deleted before they are rolled up", where, r.After, p.DeleteAfter)
		}
		if seen[r.Name()] {
			return fmt.Errorf("%s: a second tier with history %s", where, r.Name())
		}
		seen[r.Name()] = true
	}
	return nil
}

// Report says what one pass did.
type Report struct {
	CompressedRows    int64
	CompressedFiles   int
	RolledUpRows      int64
	DeletedRows       int64
	DeletedPartitions int
	Took              time.Duration
}

// String is a one-line summary for logs and `flowline compact`.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "compressed %d rows into %d files, rolled up %d rows, deleted %d rows in %d partitions, in %s",
		r.CompressedRows, r.CompressedFiles, r.RolledUpRows, r.DeletedRows, r.DeletedPartitions, r.Took.Round(time.Millisecond))
	return b.String()
}

// Compactor is implemented by storage outputs with a life cycle. Compact runs
// one pass as of now; it must be safe to repeat after a crash at any point
// (no row counted twice, none lost).
type Compactor interface {
	Compact(ctx context.Context, now time.Time, p Policy) (Report, error)
}

// Scheduler runs a Compactor every CheckEvery until stopped.
type Scheduler struct {
	c      Compactor
	p      Policy
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start begins the periodic passes in a goroutine of its own; the first
// pass runs after one CheckEvery.
func Start(c Compactor, p Policy, log *slog.Logger) *Scheduler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{c: c, p: p, log: log, cancel: cancel}
	s.wg.Add(1)
	go s.loop(ctx)
	return s
}

func (s *Scheduler) loop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(time.Duration(s.p.CheckEvery))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			rep, err := s.c.Compact(ctx, now, s.p)
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Error("lifecycle pass failed; will retry", "err", err)
			case err == nil && (rep.CompressedRows > 0 || rep.DeletedRows > 0 || rep.RolledUpRows > 0):
				s.log.Info("lifecycle pass", "report", rep.String())
			}
		}
	}
}

// Stop cancels a running pass and waits for the goroutine to end.
func (s *Scheduler) Stop() {
	s.cancel()
	s.wg.Wait()
}
