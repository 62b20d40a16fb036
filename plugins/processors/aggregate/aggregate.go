// Package aggregate is processors.aggregate: it sums records that share the
// chosen primitives (pmacct's aggregation keys) into time bins and emits the
// aggregates every refresh and at shutdown.
//
// Semantics follow pmacct: a record's key is built from the primitives (with
// pmacct's names); packets, bytes and flows are summed and TCP flags OR-ed;
// with history the key also holds the aligned time bin (stamp_inserted).
// Each refresh emits what was gathered since the previous one and clears it
// (pmacct's purge): consumers sum lines, SQL outputs add to the row.
package aggregate

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/ratelog"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/plugins/common/pmacct"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Processors, "aggregate", sample, func() any {
		return &Aggregate{
			Primitives: []string{"src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"},
			Refresh:    core.Duration(time.Minute),
			Time:       "arrival",
			MaxKeys:    DefaultMaxKeys,
		}
	})
}

// Aggregate is the processor and its configuration.
type Aggregate struct {
	Primitives []string      `toml:"primitives"`
	History    core.Duration `toml:"history"`
	Refresh    core.Duration `toml:"refresh"`
	// Time chooses the clock that bins a flow: "arrival" (when the datagram
	// came, pmacct's nfacctd_time_new) or "flow" (the flow's own start).
	Time string `toml:"time"`
	// BatchSize is the number of aggregates per emitted batch (default:
	// agent.batch_size).
	BatchSize int `toml:"batch_size"`
	// MaxKeys bounds the keys gathered between two refreshes: when the
	// table holds this many, it is emitted at once (an early refresh, as
	// if refresh had come), so distinct tuples (a spoofed-source flood)
	// cost rows downstream, never unbounded memory nor lost counters.
	MaxKeys int `toml:"max_keys"`

	table      *Table
	now        func() time.Time
	earlyFlush prometheus.Counter
	earlyLog   *ratelog.Limiter
}

// DefaultMaxKeys is the default of max_keys: about 30 MiB of table.
const DefaultMaxKeys = 100_000

var (
	_ core.Processor      = (*Aggregate)(nil)
	_ core.Ticker         = (*Aggregate)(nil)
	_ core.Initializer    = (*Aggregate)(nil)
	_ core.SchemaProvider = (*Aggregate)(nil)
)

// OutputPrimitives tells the engine the primitives that key the emitted
// records, so outputs need not repeat them.
func (a *Aggregate) OutputPrimitives() []string { return a.Primitives }

// Init validates the configuration and builds the table.
func (a *Aggregate) Init(env *core.Env) error {
	if len(a.Primitives) == 0 {
		return fmt.Errorf("primitives: at least one primitive is needed")
	}
	mask, err := core.PrimitiveMask(a.Primitives)
	if err != nil {
		return fmt.Errorf("primitives: %w", err)
	}
	if a.History < 0 {
		return fmt.Errorf("history must not be negative")
	}
	if a.Refresh <= 0 {
		return fmt.Errorf("refresh must be positive")
	}
	var byFlowTime bool
	switch a.Time {
	case "arrival":
	case "flow":
		byFlowTime = true
	default:
		return fmt.Errorf("time = %q: want \"arrival\" or \"flow\"", a.Time)
	}
	if a.MaxKeys < 0 {
		return fmt.Errorf("max_keys must not be negative")
	}
	if a.MaxKeys == 0 {
		a.MaxKeys = DefaultMaxKeys
	}
	a.earlyFlush = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "aggregate", Name: "early_flushes_total",
		Help: "Refreshes done early because the table reached max_keys."})
	if err := env.Metrics.Register(a.earlyFlush); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	a.earlyLog = ratelog.New(env.Logger, 10*time.Second)
	if a.BatchSize <= 0 {
		a.BatchSize = env.BatchSize
	}
	if a.BatchSize <= 0 {
		a.BatchSize = 1024
	}
	a.table = NewTable(mask, time.Duration(a.History), byFlowTime)
	if a.now == nil {
		a.now = time.Now
	}
	return nil
}

// Process adds every flow record of the batch to the table and releases
// it; a table that reaches max_keys is emitted at once.
func (a *Aggregate) Process(_ context.Context, in *core.Batch, emit core.Emit) error {
	for i := range in.Records {
		r := &in.Records[i]
		if r.Flags&core.FlagOptions != 0 {
			continue
		}
		a.table.Add(r)
		if a.table.Len() >= a.MaxKeys {
			a.earlyFlush.Inc()
			a.earlyLog.Log(slog.LevelWarn, "aggregate table reached max_keys: emitted early (more rows per bin downstream)", "max_keys", a.MaxKeys)
			a.table.Drain(a.now().UnixNano(), a.BatchSize, emit)
		}
	}
	in.Release()
	return nil
}

// TickEvery is the refresh interval.
func (a *Aggregate) TickEvery() time.Duration { return time.Duration(a.Refresh) }

// Tick emits and clears the aggregates gathered since the last refresh.
func (a *Aggregate) Tick(_ context.Context, now time.Time, emit core.Emit) error {
	a.table.Drain(now.UnixNano(), a.BatchSize, emit)
	return nil
}

// Flush emits everything still held (shutdown).
func (a *Aggregate) Flush(_ context.Context, emit core.Emit) error {
	a.table.Drain(a.now().UnixNano(), a.BatchSize, emit)
	return nil
}

// key is the aggregation key: every primitive's slot, with the slots of the
// primitives not chosen left zero.
//
// Addresses are held as 16 bytes plus a family byte rather than netip.Addr, so
// that the key holds no pointer and the map hashes it as plain memory.
type key struct {
	src, dst, peer   [16]byte
	stamp            int64
	srcAS, dstAS     uint32
	inIf, outIf      uint32
	rate             uint32
	srcPort, dstPort uint16
	vlan             uint16
	proto, tos       uint8
	srcMask, dstMask uint8
	srcMAC, dstMAC   [6]byte
	// families holds the address family of src, dst and peer, 2 bits each.
	families uint8
}

// Address families in key.families.
const (
	famNone = 0
	fam4    = 1
	fam6    = 2
)

// putAddr stores a in slot and its family at shift.
func (k *key) putAddr(slot *[16]byte, shift uint8, a netip.Addr) {
	switch {
	case a.Is4():
		v := a.As4()
		copy(slot[:4], v[:])
		k.families |= fam4 << shift
	case a.IsValid():
		*slot = a.As16()
		k.families |= fam6 << shift
	}
}

// addr rebuilds the address stored in slot.
func (k *key) addr(slot *[16]byte, shift uint8) netip.Addr {
	switch (k.families >> shift) & 3 {
	case fam4:
		return netip.AddrFrom4([4]byte(slot[:4]))
	case fam6:
		return netip.AddrFrom16(*slot)
	}
	return netip.Addr{}
}

// counters are the summed values of one key.
type counters struct {
	packets, bytes, flows uint64
	tcpFlags              uint8
}

// Table is the aggregation table. It is not safe for concurrent use.
type Table struct {
	mask       core.Field
	history    int64
	byFlowTime bool

	index keyIndex
	keys  []key
	vals  []counters

	// Booleans per primitive, computed once, so Add does no mask arithmetic.
	src, dst, srcNet, dstNet, peer, srcPort, dstPort, proto, tos bool
	srcAS, dstAS, inIf, outIf, srcMask, dstMask, rate, vlan      bool
	srcMAC, dstMAC                                               bool
	outMask                                                      core.Field
}

// NewTable returns an empty table keyed by the primitives in mask, binned by
// history (0: no time bins).
func NewTable(mask core.Field, history time.Duration, byFlowTime bool) *Table {
	t := &Table{
		mask:       mask,
		history:    int64(history),
		byFlowTime: byFlowTime,
	}
	// Room for the keys of a busy minute from the start: growing by
	// doubling under 3M flows/s dropped a fraction of the first second.
	t.index.init(1 << 15)
	t.keys = make([]key, 0, 1<<14)
	t.vals = make([]counters, 0, 1<<14)
	has := func(f core.Field) bool { return mask&f != 0 }
	t.src, t.dst = has(core.FieldSrcAddr), has(core.FieldDstAddr)
	t.srcNet, t.dstNet = has(core.FieldSrcNet), has(core.FieldDstNet)
	t.peer = has(core.FieldExporter)
	t.srcPort, t.dstPort = has(core.FieldSrcPort), has(core.FieldDstPort)
	t.proto, t.tos = has(core.FieldProto), has(core.FieldTOS)
	t.srcAS, t.dstAS = has(core.FieldSrcAS), has(core.FieldDstAS)
	t.inIf, t.outIf = has(core.FieldInIface), has(core.FieldOutIface)
	t.srcMask, t.dstMask = has(core.FieldSrcMask), has(core.FieldDstMask)
	t.rate, t.vlan = has(core.FieldSamplingRate), has(core.FieldVLAN)
	t.srcMAC, t.dstMAC = has(core.FieldSrcMAC), has(core.FieldDstMAC)
	t.outMask = mask | core.FieldPackets | core.FieldBytes
	if t.history > 0 {
		t.outMask |= core.FieldStamps
	}
	return t
}

// Len is the number of aggregates held.
func (t *Table) Len() int { return len(t.keys) }

// Bin returns the start of the history bin holding ts (Unix nanoseconds),
// aligned to the Unix epoch: a 10m history bins at :00, :10, :20 ...
func (t *Table) Bin(ts int64) int64 {
	if t.history <= 0 {
		return 0
	}
	b := ts - ts%t.history
	if ts < 0 && ts%t.history != 0 {
		b -= t.history
	}
	return b
}

// Add adds one flow record.
func (t *Table) Add(r *core.Record) {
	var k key
	if t.src {
		k.putAddr(&k.src, 0, r.SrcAddr)
	} else if t.srcNet {
		k.putAddr(&k.src, 0, pmacct.Network(r.SrcAddr, r.SrcMask))
	}
	if t.dst {
		k.putAddr(&k.dst, 2, r.DstAddr)
	} else if t.dstNet {
		k.putAddr(&k.dst, 2, pmacct.Network(r.DstAddr, r.DstMask))
	}
	if t.peer {
		k.putAddr(&k.peer, 4, r.Exporter)
	}
	if t.srcPort {
		k.srcPort = r.SrcPort
	}
	if t.dstPort {
		k.dstPort = r.DstPort
	}
	if t.proto {
		k.proto = r.Proto
	}
	if t.tos {
		k.tos = r.TOS
	}
	if t.srcAS {
		k.srcAS = r.SrcAS
	}
	if t.dstAS {
		k.dstAS = r.DstAS
	}
	if t.inIf {
		k.inIf = r.InIface
	}
	if t.outIf {
		k.outIf = r.OutIface
	}
	// A network is its address and its length: src_net keys on the mask
	// too, and outputs that print net_src mask the address with it.
	if t.srcMask || t.srcNet {
		k.srcMask = r.SrcMask
	}
	if t.dstMask || t.dstNet {
		k.dstMask = r.DstMask
	}
	if t.rate {
		k.rate = r.SamplingRate
	}
	if t.vlan {
		k.vlan = r.VLAN
	}
	if t.srcMAC {
		k.srcMAC = r.SrcMAC
	}
	if t.dstMAC {
		k.dstMAC = r.DstMAC
	}
	if t.history > 0 {
		ts := r.Received
		if t.byFlowTime {
			switch {
			case r.Start != 0:
				ts = r.Start
			case r.End != 0:
				ts = r.End
			}
		}
		k.stamp = t.Bin(ts)
	}
	flows := r.Flows
	if flows == 0 {
		flows = 1
	}
	h := k.hash()
	i, slot := t.index.find(&k, h, t.keys)
	if i < 0 {
		i = int32(len(t.keys))
		t.keys = append(t.keys, k)
		t.vals = append(t.vals, counters{})
		t.index.insert(slot, h, i, t.keys)
	}
	v := &t.vals[i]
	v.packets += r.Packets
	v.bytes += r.Bytes
	v.flows += flows
	v.tcpFlags |= r.TCPFlags
}

// Drain emits every aggregate as records in batches of size and empties the
// table. now becomes stamp_updated.
func (t *Table) Drain(now int64, size int, emit core.Emit) {
	if len(t.keys) == 0 {
		return
	}
	var b *core.Batch
	for i := range t.keys {
		if b == nil {
			b = core.NewBatch()
		}
		k, v := &t.keys[i], &t.vals[i]
		r := b.AppendRecord()
		r.SrcAddr, r.DstAddr, r.Exporter = k.addr(&k.src, 0), k.addr(&k.dst, 2), k.addr(&k.peer, 4)
		r.SrcPort, r.DstPort = k.srcPort, k.dstPort
		r.Proto, r.TOS = k.proto, k.tos
		r.SrcAS, r.DstAS = k.srcAS, k.dstAS
		r.InIface, r.OutIface = k.inIf, k.outIf
		r.SrcMask, r.DstMask = k.srcMask, k.dstMask
		r.SamplingRate, r.VLAN = k.rate, k.vlan
		r.SrcMAC, r.DstMAC = k.srcMAC, k.dstMAC
		r.Packets, r.Bytes, r.Flows = v.packets, v.bytes, v.flows
		r.TCPFlags = v.tcpFlags
		r.Present = t.outMask
		if t.history > 0 {
			r.StampInserted, r.StampUpdated = k.stamp, now
		}
		if len(b.Records) >= size {
			emit(b)
			b = nil
		}
	}
	if b != nil {
		emit(b)
	}
	t.index.reset()
	t.keys = t.keys[:0]
	t.vals = t.vals[:0]
}
