package mysql

import (
	"context"
	"time"

	"github.com/flowline/flowline/core/lifecycle"
)

func (o *MySQL) setupLifecycle(ctx context.Context) error { return nil }

// Compact runs one life-cycle pass.
func (o *MySQL) Compact(ctx context.Context, now time.Time, p lifecycle.Policy) (lifecycle.Report, error) {
	return lifecycle.Report{}, nil
}
