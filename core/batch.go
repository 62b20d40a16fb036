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
	// Origin says where the batch came from when its source can redeliver
	// it (a message of inputs.amqp): storing outputs keep the highest
	// sequence stored per writer so that a redelivered batch is stored once.
	// The zero Origin means none.
	Origin Origin
	// ID numbers the batch where a receiver must recognise a resend: the
	// engine sends a batch to an external plugin again, with the same ID,
	// when the plugin died before acknowledging it. 0 means unnumbered.
	ID uint64

	refs    atomic.Int32
	failed  atomic.Bool
	acks    []func(ok bool)
	charged atomic.Int64 // bytes counted in QueuedBytes (see Charge)
	// packetBatch says which pool the batch returns to.
	packetBatch bool
}

// Origin identifies a batch from a source that can redeliver it.
type Origin struct {
	// Writer is the upstream writer's id (an edge collector's amqp output).
	Writer string
	// Seq is the writer's sequence number of this batch; it grows.
	Seq uint64
}

// OnDone attaches an acknowledgement: fn is called once, from the goroutine
// that releases the last reference, with ok=true when every holder finished
// with the batch normally (outputs committed it, an aggregate absorbed it),
// or ok=false when one of them gave it up (Fail). An input that can redeliver
// acks its message there.
func (b *Batch) OnDone(fn func(ok bool)) { b.acks = append(b.acks, fn) }

// Fail marks the batch as given up by one holder (a write dropped after
// retries): its acknowledgements will report ok=false.
func (b *Batch) Fail() { b.failed.Store(true) }

// MoveAcks hands b's acknowledgements and origin to dst, for a processor that
// replaces a batch by a new one: the source is acknowledged when dst is done.
func (b *Batch) MoveAcks(dst *Batch) {
	dst.acks = append(dst.acks, b.acks...)
	clear(b.acks)
	b.acks = b.acks[:0]
	if dst.Origin == (Origin{}) {
		dst.Origin = b.Origin
	}
	if b.failed.Load() {
		dst.failed.Store(true)
	}
}

// DefaultArenaSize is the arena capacity of a pooled packet batch: room
// for a few hundred full-size datagrams.
const DefaultArenaSize = 512 << 10

// Batches come from two pools: packet batches carry a large arena for the
// datagrams' bytes; record batches carry none until a decoder stores
// extension values, so that a queue of records holds (and the memory
// budget charges) only the records themselves.
var (
	packetPool = sync.Pool{New: func() any {
		return &Batch{
			Packets:     make([]Packet, 0, 256),
			Arena:       make([]byte, 0, DefaultArenaSize),
			packetBatch: true,
		}
	}}
	recordPool = sync.Pool{New: func() any {
		return &Batch{Records: make([]Record, 0, 1024)}
	}}
)

// NewBatch returns an empty record batch from the pool with one reference.
// Its arena is empty and grows when something is appended to it.
func NewBatch() *Batch {
	b := recordPool.Get().(*Batch)
	b.refs.Store(1)
	return b
}

// NewPacketBatch returns an empty packet batch from the pool with one
// reference: an arena of DefaultArenaSize for the datagrams' bytes. Inputs
// that receive datagrams use it.
func NewPacketBatch() *Batch {
	b := packetPool.Get().(*Batch)
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
	if len(b.acks) > 0 {
		ok := !b.failed.Load()
		for i, fn := range b.acks {
			fn(ok)
			b.acks[i] = nil
		}
		b.acks = b.acks[:0]
	}
	b.refund()
	b.failed.Store(false)
	b.Origin = Origin{}
	b.ID = 0
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
	if b.packetBatch {
		packetPool.Put(b)
	} else {
		recordPool.Put(b)
	}
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

// HasAcks reports whether the batch carries acknowledgements: an output
// that commits later than its Write returns (the raw flow log) retains such
// a batch until it has committed the records.
func (b *Batch) HasAcks() bool { return len(b.acks) > 0 }
