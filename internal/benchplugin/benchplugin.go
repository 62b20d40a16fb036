// Package benchplugin holds the trivial plugins the plugin benchmarks run,
// once in process and once as an external plugin process (cmd/...), so that
// the difference is the cost of the plugin protocol.
package benchplugin

import (
	"context"
	"os"

	"github.com/flowline/flowline/sdk"
)

// Counter is an output that sums the packets of what it is given.
type Counter struct {
	Packets uint64
}

// Connect does nothing.
func (c *Counter) Connect(context.Context) error { return nil }

// Write sums the batch's packets.
func (c *Counter) Write(_ context.Context, b *sdk.Batch) error {
	for i := range b.Records {
		c.Packets += b.Records[i].Packets
	}
	return nil
}

// Close does nothing.
func (c *Counter) Close(context.Context) error { return nil }

// Tagger is a processor that sets a tag on every record and passes the
// batch on.
type Tagger struct{}

// Process tags the records.
func (*Tagger) Process(_ context.Context, b *sdk.Batch, emit sdk.Emit) error {
	for i := range b.Records {
		b.Records[i].Tag = 1
	}
	emit(b)
	return nil
}

// Flush holds nothing.
func (*Tagger) Flush(context.Context, sdk.Emit) error { return nil }

// Crasher is an output whose process dies on every write.
type Crasher struct{ Counter }

// Write ends the process.
func (*Crasher) Write(context.Context, *sdk.Batch) error {
	os.Exit(7)
	return nil
}
