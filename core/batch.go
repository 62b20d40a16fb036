package core

import (
	"sync"
	"sync/atomic"
)

// Batch carries packets or records (or both) through the pipeline. Items move
// in batches of hundreds to thousands, never one per channel send.
//
// A batch is owned by one stage at a time; when the engine fans it out to
// several outputs it is shared read-only and returned to the pool when the
// last holder calls Release.
type Batch struct {
	Packets []Packet
	Records []Record
	// Arena holds the bytes that Packets[i].Data and Records[i].Ext point into.
	Arena []byte

	refs atomic.Int32
}

// DefaultArenaSize is the arena capacity of a pooled batch: room for a few
// hundred full-size datagrams.
const DefaultArenaSize = 1 << 20

var batchPool = sync.Pool{New: func() any {
	return &Batch{
		Packets: make([]Packet, 0, 256),
		Records: make([]Record, 0, 1024),
		Arena:   make([]byte, 0, DefaultArenaSize),
	}
}}

// NewBatch returns an empty batch from the pool with one reference.
func NewBatch() *Batch {
	b := batchPool.Get().(*Batch)
	b.refs.Store(1)
	return b
}

// Len is the number of items the batch carries (packets plus records).
func (b *Batch) Len() int { return len(b.Packets) + len(b.Records) }

// Retain adds n references; each must be matched by a Release.
func (b *Batch) Retain(n int) { b.refs.Add(int32(n)) }

// Release drops one reference; the last one returns the batch to the pool.
func (b *Batch) Release() {
	if b == nil {
		return
	}
	n := b.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("core: Batch released more times than retained")
	}
	clear(b.Packets) // drop references to memory owned by others
	b.Packets = b.Packets[:0]
	for i := range b.Records {
		b.Records[i].Ext = nil
	}
	b.Records = b.Records[:0]
	b.Arena = b.Arena[:0]
	if cap(b.Records) > 1<<16 || cap(b.Arena) > 8*DefaultArenaSize {
		return // let oversized batches go to the garbage collector
	}
	batchPool.Put(b)
}

// AppendRecord appends a zero record and returns a pointer to it, growing the
// slice when needed. The pointer is valid until the next append.
func (b *Batch) AppendRecord() *Record {
	if len(b.Records) < cap(b.Records) {
		b.Records = b.Records[:len(b.Records)+1]
		r := &b.Records[len(b.Records)-1]
		*r = Record{}
		return r
	}
	b.Records = append(b.Records, Record{})
	return &b.Records[len(b.Records)-1]
}
