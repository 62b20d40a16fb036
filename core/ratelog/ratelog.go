// Package ratelog logs repeated events (malformed packets, write errors) at
// most once per interval, with the count of the events it held back, so that
// bad input cannot flood the log.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter logs at most one message per interval.
type Limiter struct {
	log      *slog.Logger
	interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// New returns a limiter that logs through log at most once per interval.
func New(log *slog.Logger, interval time.Duration) *Limiter {
	return &Limiter{log: log, interval: interval}
}

// Log logs msg at level unless another message was logged less than the
// interval ago; held-back messages are counted in the next one that is logged.
func (l *Limiter) Log(level slog.Level, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.interval {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.last = now
	n := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.log.Log(context.Background(), level, msg, args...)
}
