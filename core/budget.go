package core

import (
	"sync/atomic"
	"unsafe"
)

// Memory accounting for the engine's budget (agent.max_buffer).
//
// The engine charges a batch when it enters a queue between stages (Charge)
// and the charge is refunded when the batch's last reference is released,
// so QueuedBytes is the memory held by batches in flight between an input
// and the stage that finishes with them. Plugins that hold memory of their
// own on behalf of the pipeline (the templates processor's early-data
// queue, an output's memory buffer) report it through MemoryHolder. Inputs
// drop, count and log when the sum passes the budget.

// queuedBytes is the sum of the charges of live batches.
var queuedBytes atomic.Int64

// QueuedBytes is the memory of the batches charged and not yet released.
func QueuedBytes() int64 { return queuedBytes.Load() }

const (
	packetSize = int64(unsafe.Sizeof(Packet{}))
	recordSize = int64(unsafe.Sizeof(Record{}))
)

// Cost is the memory a batch holds: its arena and its packet and record
// slices, by capacity (what stays resident while it is queued).
func (b *Batch) Cost() int64 {
	return int64(cap(b.Arena)) + int64(cap(b.Packets))*packetSize + int64(cap(b.Records))*recordSize
}

// Charge counts the batch in QueuedBytes until its last Release (charging
// it again, after it grew, replaces the earlier charge).
func (b *Batch) Charge() {
	c := b.Cost()
	old := b.charged.Swap(c)
	queuedBytes.Add(c - old)
}

// refund removes the batch's charge (at its last Release).
func (b *Batch) refund() {
	if c := b.charged.Swap(0); c != 0 {
		queuedBytes.Add(-c)
	}
}

// MemoryHolder is implemented by plugins that hold pipeline data of their
// own (an early-data queue, an output's memory buffer): the engine counts
// HeldBytes in the memory budget. It is called from another goroutine than
// the plugin's, so it must be safe for concurrent use.
type MemoryHolder interface {
	HeldBytes() int64
}

// Drop is one kind of loss a plugin counts: N items of Unit ("packets",
// "flows", "data sets") lost for Why ("early-data queue full").
type Drop struct {
	Why  string
	Unit string
	N    uint64
}

// DropReporter is implemented by plugins that lose data on their own (a
// bounded queue, a cap, the kernel's socket buffer): the engine puts
// their totals in its loss log line and in the shutdown line. Dropped
// returns running totals and is called from another goroutine than the
// plugin's, so it must be safe for concurrent use.
type DropReporter interface {
	Dropped() []Drop
}

// FlowCounter is implemented by inputs that can tell, cheaply, how many
// flows a batch of their packets carries (NetFlow v5 and v9 headers count
// them): the engine's loss line then says how many flows a dropped batch
// held as well as how many packets.
type FlowCounter interface {
	CountFlows(b *Batch) uint64
}
