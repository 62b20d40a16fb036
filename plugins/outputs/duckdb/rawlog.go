package duckdb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowline/flowline/core"
)

// The raw flow log stores every flow (no aggregate upstream) without the
// hot table: records are copied into columnar buffers, one per time
// partition; a full buffer (segment_rows) or an old one (flush_every) is
// handed to a background writer that encodes it as a Parquet segment file
// of the archive itself (parquet.go: delta-encoded columns, no DuckDB on
// this path), syncs it, has DuckDB read its totals back and compares them
// with the buffer's, and lists it in the manifest as a raw-tier file: from
// then on flows_all, the rollup tiers, `flowline stats` and the life cycle
// see it like a compressed partition. The life cycle's compress step merges
// the segments of a partition into one file, sorted and zstd (DuckDB).
//
// Crash safety: a segment is visible only once its manifest entry is
// committed (after the file was synced), so a kill never corrupts the store;
// it loses the flows still buffered in memory (at most flush_every, or
// segment_rows per open partition) and the segments written but not yet
// listed. Batches that carry acknowledgements (a redelivering input) are
// held until their segment is listed, so such an input loses nothing.

// RawLogOptions tune the raw flow log.
type RawLogOptions struct {
	// SegmentRows is the row count at which a partition's buffer becomes
	// a segment file.
	SegmentRows int
	// FlushEvery is the longest a flow waits in memory.
	FlushEvery time.Duration
	// MaxPending bounds the buffers waiting for the writer; beyond it
	// Write waits (the engine's queue then fills and the input counts its
	// drops).
	MaxPending int
}

// rawMask is the schema mask of raw flow log files: the columns of
// unaggregated rows.
const rawMask = rawSchema | rawFields

// rawLogVersion is the version number of raw flow log files (hot table
// versions start at 1).
const rawLogVersion = 0

// rawLayout is where each field of a flow goes among a segment's columns
// (the archive file columns of the raw schema, fileSelect's names and types).
type rawLayout struct {
	cols []pqColumn
	// Column indexes; addresses have two (upper and lower half).
	stampIn, stampUp, flowsCol                  int
	peer, src, dst                              [2]int
	srcAS, dstAS, inIf, outIf, srcPort, dstPort int
	proto, flags, tos, srcMask, dstMask, rate   int
	packetsCol, bytesCol                        int
}

// newRawLayout builds the columns from the raw schema's column table.
func newRawLayout() (*rawLayout, error) {
	l := &rawLayout{}
	idx := map[colKind]*int{
		kStampIn: &l.stampIn, kStampUp: &l.stampUp, kFlows: &l.flowsCol, kSrcAS: &l.srcAS, kDstAS: &l.dstAS,
		kInIf: &l.inIf, kOutIf: &l.outIf, kSrcPort: &l.srcPort, kDstPort: &l.dstPort, kProto: &l.proto,
		kTCPFlags: &l.flags, kTOS: &l.tos, kSrcMask: &l.srcMask, kDstMask: &l.dstMask, kRate: &l.rate,
		kPackets: &l.packetsCol, kBytes: &l.bytesCol,
	}
	addrs := map[colKind]*[2]int{kExporter: &l.peer, kSrcAddr: &l.src, kDstAddr: &l.dst}
	for _, c := range columnsOf(rawMask) {
		if a, ok := addrs[c.kind]; ok {
			a[0], a[1] = len(l.cols), len(l.cols)+1
			l.cols = append(l.cols,
				pqColumn{name: c.name + "__hi", phys: pqInt64, conv: pqConvUint64, optional: true, size: 8, dict: true},
				pqColumn{name: c.name + "__lo", phys: pqInt64, conv: pqConvUint64, optional: true, size: 8, dict: true})
			continue
		}
		p, ok := idx[c.kind]
		if !ok {
			return nil, fmt.Errorf("raw flow log: no field for column %s", c.name)
		}
		*p = len(l.cols)
		col := pqColumn{name: c.name, phys: pqInt32}
		switch c.typ {
		case "TIMESTAMP":
			col.phys, col.conv, col.size = pqInt64, pqConvTimestampMicros, 8
		case "UBIGINT":
			col.phys, col.conv, col.size = pqInt64, pqConvUint64, 8
		case "UINTEGER":
			col.conv, col.size = pqConvUint32, 4
		case "USMALLINT":
			col.conv, col.size = pqConvUint16, 2
		case "UTINYINT":
			col.conv, col.size = pqConvUint8, 1
		default:
			return nil, fmt.Errorf("raw flow log: no Parquet type for %s %s", c.name, c.typ)
		}
		// Counters, times and ports have too many distinct values for
		// a dictionary to pay.
		col.dict = c.kind != kStampIn && c.kind != kStampUp && c.kind != kPackets && c.kind != kBytes &&
			c.kind != kFlows && c.kind != kSrcPort && c.kind != kDstPort
		l.cols = append(l.cols, col)
	}
	// add writes each field with the typed append of its column's size.
	for ix, size := range map[*int]int{&l.stampIn: 8, &l.stampUp: 8, &l.srcAS: 4, &l.dstAS: 4, &l.inIf: 4, &l.outIf: 4,
		&l.srcPort: 2, &l.dstPort: 2, &l.proto: 1, &l.flags: 1, &l.tos: 1, &l.srcMask: 1, &l.dstMask: 1, &l.rate: 4,
		&l.packetsCol: 8, &l.bytesCol: 8, &l.flowsCol: 8} {
		if l.cols[*ix].size != size {
			return nil, fmt.Errorf("raw flow log: column %s is %d bytes, its field %d", l.cols[*ix].name, l.cols[*ix].size, size)
		}
	}
	return l, nil
}

// rawBuffer is the columnar buffer of one partition.
type rawBuffer struct {
	*rawLayout
	part    int64 // partition start, Unix microseconds
	rows    int
	packets uint64
	bytes   uint64
	opened  time.Time
	held    []*core.Batch // batches with acknowledgements, released at commit
	// origins is the highest sequence per upstream writer (inputs.amqp)
	// whose records this buffer holds: stored with the segment.
	origins map[string]uint64
}

func (b *rawBuffer) reset(part int64, now time.Time) {
	for i := range b.cols {
		b.cols[i].reset()
	}
	b.part, b.rows, b.packets, b.bytes, b.opened = part, 0, 0, 0, now
	clear(b.held)
	b.held = b.held[:0]
	clear(b.origins)
}

// addr appends an address's two halves (NULL when there is none).
func (b *rawBuffer) addr(ix [2]int, a netip.Addr) {
	hi, lo := &b.cols[ix[0]], &b.cols[ix[1]]
	if !a.IsValid() {
		hi.null()
		lo.null()
		return
	}
	if a.Is4() { // mapped: ::ffff:a.b.c.d
		x := a.As4()
		hi.putZero()
		lo.putOpt(0xffff<<32 | uint64(binary.BigEndian.Uint32(x[:])))
		return
	}
	x := a.As16()
	hi.putSparse(binary.BigEndian.Uint64(x[:8]))
	lo.putOpt(binary.BigEndian.Uint64(x[8:]))
}

// add appends one flow; stampIn and stampUp are in Unix nanoseconds.
func (b *rawBuffer) add(r *core.Record, stampIn, stampUp int64) {
	c := b.cols
	c[b.stampIn].put64(uint64(floorDiv(stampIn, 1000)))
	c[b.stampUp].put64(uint64(floorDiv(stampUp, 1000)))
	b.addr(b.peer, r.Exporter)
	b.addr(b.src, r.SrcAddr)
	b.addr(b.dst, r.DstAddr)
	c[b.srcAS].put32(r.SrcAS)
	c[b.dstAS].put32(r.DstAS)
	c[b.inIf].put32(r.InIface)
	c[b.outIf].put32(r.OutIface)
	c[b.srcPort].put16(r.SrcPort)
	c[b.dstPort].put16(r.DstPort)
	c[b.proto].put8(r.Proto)
	c[b.flags].put8(r.TCPFlags)
	c[b.tos].put8(r.TOS)
	c[b.srcMask].put8(r.SrcMask)
	c[b.dstMask].put8(r.DstMask)
	c[b.rate].put32(r.SamplingRate)
	c[b.packetsCol].put64(r.Packets)
	c[b.bytesCol].put64(r.Bytes)
	b.rows++
	b.packets += r.Packets
	b.bytes += r.Bytes
}

// finish completes the columns stored at encoding (flows = 1).
func (b *rawBuffer) finish() {
	f := &b.cols[b.flowsCol]
	f.b = f.b[:0]
	for range b.rows {
		f.b = binary.LittleEndian.AppendUint64(f.b, 1)
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// RawLog is the raw flow log of a store (see the top of this file).
type RawLog struct {
	s    *Store
	opt  RawLogOptions
	log  *slog.Logger
	part int64 // partition length, microseconds

	mu     sync.Mutex
	cond   *sync.Cond    // signalled when the writer takes a sealed buffer
	open   []*rawBuffer  // at most maxOpen, one per partition
	sealed []*rawBuffer  // waiting for the writer
	free   []*rawBuffer  // recycled buffers
	err    error         // the writer's first error since the last Flush
	notify chan struct{} // wakes the writer

	pending sync.WaitGroup // buffers sealed and not yet written
	// held is the memory of the buffers being encoded and of the encoded
	// segments not yet written (the engine's memory budget counts it).
	held  atomic.Int64
	wconn *sql.Conn   // the syncer's connection (reading totals back)
	pages pageEncoder // the encoder's buffers, reused
	// encoded hands encoded segments from the encoder to the syncer, and
	// spare gives their byte buffers back: two segments can be in flight,
	// so that encoding the next one overlaps writing, syncing and reading
	// back the last one.
	encoded chan encodedSegment
	spare   chan *bytes.Buffer
	stop    chan struct{}
	done    chan struct{}

	// buffered is the highest sequence per upstream writer taken into a
	// buffer and not yet listed: a redelivery of such a batch is skipped
	// too. A lost segment resets it to what is stored.
	buffered map[string]uint64

	// unlisted are segments written and not yet listed (the writer lists
	// them when no life-cycle pass holds the manifest), under ulMu.
	ulMu     sync.Mutex
	unlisted []rawSegment

	// Hooks for metrics: rows listed, flows lost.
	onCommit func(rows int)
	onLost   func(flows int)
}

// encodedSegment is a segment encoded and not yet written.
type encodedSegment struct {
	data    *bytes.Buffer
	meta    segmentMeta
	held    []*core.Batch
	origins map[string]uint64
}

type rawSegment struct {
	f       newFile
	held    []*core.Batch
	origins map[string]uint64
}

// commitEvery is the shortest interval between two listings of segments
// (measured: a listing costs DuckDB 5 ms and more as the files add up, and
// was 11% of the CPU at 700k flows/s listing each segment alone).
const commitEvery = 2 * time.Second

// verifyEvery is how often, at most, the syncer has DuckDB read a segment's
// totals back before listing it: every segment below about 130k flows/s
// (one segment a second), a sample above. A read-back cost 5-10% of the CPU
// at 2M flows/s; it checks the encoder, which the tests check too, while
// the exact totals of the listing come from the buffer either way.
const verifyEvery = time.Second

// maxOpen bounds the partitions buffered at once: flows far in the past or
// future (an exporter's clock) seal the oldest buffer.
const maxOpen = 4

// OpenRawLog starts the raw flow log of a read-write store.
func (s *Store) OpenRawLog(ctx context.Context, opt RawLogOptions) (*RawLog, error) {
	if s.opt.ReadOnly {
		return nil, errors.New("raw flow log: the store is open read-only")
	}
	if opt.SegmentRows <= 0 {
		opt.SegmentRows = DefaultSegmentRows
	}
	if opt.FlushEvery <= 0 {
		opt.FlushEvery = 10 * time.Second
	}
	if opt.MaxPending <= 0 {
		opt.MaxPending = 1
	}
	if _, err := newRawLayout(); err != nil {
		return nil, err
	}
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	l := &RawLog{s: s, opt: opt, log: s.log, part: s.opt.Partition.Microseconds(),
		notify: make(chan struct{}, 1), wconn: c, buffered: map[string]uint64{}, stop: make(chan struct{}), done: make(chan struct{}),
		encoded: make(chan encodedSegment, 1), spare: make(chan *bytes.Buffer, 2),
		onCommit: func(int) {}, onLost: func(int) {}}
	l.spare <- new(bytes.Buffer)
	l.spare <- new(bytes.Buffer)
	l.cond = sync.NewCond(&l.mu)
	go l.run()
	return l, nil
}

// DefaultSegmentRows is the default segment size: large enough for the
// encodings to pay (dictionaries, 128-value delta blocks), small enough that
// a buffer (85 bytes a flow: 11 MiB) is written quickly: Write waits while a
// sealed buffer waits for the writer, and with 256k rows the engine's queues
// passed the memory budget at 1M flows/s (the input dropped two thirds).
const DefaultSegmentRows = 1 << 17

// Write copies the flow records of b into the buffers of their partitions.
// It returns once they are buffered (not yet durable; see the crash-safety
// note above); it waits while MaxPending sealed buffers wait for the writer.
// A batch from a redelivering source whose writer's sequence was stored or
// buffered before is skipped: Write returns false.
func (l *RawLog) Write(b *core.Batch) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.sealed) >= l.opt.MaxPending {
		l.cond.Wait()
	}
	o := b.Origin
	if o.Writer != "" {
		last, ok := l.buffered[o.Writer]
		if !ok {
			l.s.mu.Lock()
			last, ok = l.s.origins[o.Writer]
			l.s.mu.Unlock()
		}
		if ok && o.Seq <= last {
			return false
		}
		l.buffered[o.Writer] = o.Seq
	}
	now := time.Now()
	acks := b.HasAcks()
	var cur *rawBuffer
	for i := range b.Records {
		r := &b.Records[i]
		if r.Flags&core.FlagOptions != 0 {
			continue
		}
		in := firstNonZero(r, true, now)
		part := floorTo(in/1000, l.part)
		if cur == nil || cur.part != part {
			cur = l.buffer(part, now)
			// Held once per run of its records in a buffer (each
			// Retain is matched by a Release at the listing).
			if acks && (len(cur.held) == 0 || cur.held[len(cur.held)-1] != b) {
				b.Retain(1)
				cur.held = append(cur.held, b)
			}
			if o.Writer != "" {
				if cur.origins == nil {
					cur.origins = map[string]uint64{}
				}
				cur.origins[o.Writer] = max(cur.origins[o.Writer], o.Seq)
			}
		}
		cur.add(r, in, firstNonZero(r, false, now))
		if cur.rows >= l.opt.SegmentRows {
			l.seal(cur)
			cur = nil
		}
	}
	return true
}

// buffer returns the open buffer of a partition, opening one (and sealing
// the oldest when maxOpen are open). Called with l.mu held.
func (l *RawLog) buffer(part int64, now time.Time) *rawBuffer {
	for _, b := range l.open {
		if b.part == part {
			return b
		}
	}
	if len(l.open) >= maxOpen {
		l.seal(l.open[0])
	}
	var b *rawBuffer
	if n := len(l.free); n > 0 {
		b, l.free = l.free[n-1], l.free[:n-1]
	} else {
		// A new buffer has room for a whole segment and recycled ones
		// keep it, so that nothing is copied to grow a column: growing
		// them at start-up (and collecting the garbage that left)
		// dropped 2% of the first second at 2M flows/s.
		layout, _ := newRawLayout() // checked by OpenRawLog
		b = &rawBuffer{rawLayout: layout}
		for i := range b.cols {
			b.cols[i].b = make([]byte, 0, l.opt.SegmentRows*b.cols[i].size)
		}
	}
	b.reset(part, now)
	l.open = append(l.open, b)
	return b
}

// seal hands an open buffer to the writer. Called with l.mu held.
func (l *RawLog) seal(b *rawBuffer) {
	for i, o := range l.open {
		if o == b {
			l.open = append(l.open[:i], l.open[i+1:]...)
			break
		}
	}
	if b.rows == 0 {
		l.recycle(b)
		return
	}
	l.pending.Add(1)
	l.sealed = append(l.sealed, b)
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// HeldBytes is the memory of the flows the log holds: buffers filling,
// sealed, or being written.
func (l *RawLog) HeldBytes() int64 {
	l.mu.Lock()
	var n int64
	for _, b := range l.open {
		n += b.bytesUsed()
	}
	for _, b := range l.sealed {
		n += b.bytesUsed()
	}
	l.mu.Unlock()
	return n + l.held.Load()
}

// bytesUsed is the buffer's memory in use.
func (b *rawBuffer) bytesUsed() int64 {
	var n int
	for i := range b.cols {
		n += len(b.cols[i].b) + len(b.cols[i].defs)
	}
	return int64(n)
}

// recycle keeps a written buffer for reuse. Called with l.mu held.
func (l *RawLog) recycle(b *rawBuffer) {
	b.reset(0, time.Time{})
	// Enough for the steady state (one filling, MaxPending sealed, one
	// being written): a buffer grown anew costs its whole size again.
	if len(l.free) < l.opt.MaxPending+1 {
		l.free = append(l.free, b)
	}
}

// flushOld seals the buffers older than FlushEvery.
func (l *RawLog) flushOld(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range append([]*rawBuffer{}, l.open...) {
		if now.Sub(b.opened) >= l.opt.FlushEvery {
			l.seal(b)
		}
	}
}

// Flush seals every buffer and waits until the writer has written and
// listed them: Close, tests, and a life-cycle pass that wants to see every
// flow (`flowline compact --now`).
func (l *RawLog) Flush(ctx context.Context) error {
	l.mu.Lock()
	for len(l.open) > 0 {
		l.seal(l.open[0])
	}
	l.mu.Unlock()
	l.pending.Wait()
	l.s.passMu.Lock()
	err := l.commit(ctx)
	l.s.passMu.Unlock()
	l.mu.Lock()
	err = errors.Join(err, l.err)
	l.err = nil
	l.mu.Unlock()
	return err
}

// Close flushes and stops the writer.
func (l *RawLog) Close(ctx context.Context) error {
	err := l.Flush(ctx)
	close(l.stop)
	<-l.done
	return errors.Join(err, l.wconn.Close())
}

// run is the encoder: it encodes sealed buffers for the syncer and seals
// buffers that reached FlushEvery. It starts the syncer and the lister and
// stops them when it stops.
func (l *RawLog) run() {
	var helpers sync.WaitGroup
	helpers.Add(2)
	go func() { defer helpers.Done(); l.syncer() }()
	go func() { defer helpers.Done(); l.lister() }()
	defer func() {
		close(l.encoded)
		helpers.Wait()
		close(l.done)
	}()
	tick := time.NewTicker(min(l.opt.FlushEvery/4+time.Millisecond, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-l.notify:
		case now := <-tick.C:
			l.flushOld(now)
		case <-l.stop:
			return
		}
		for {
			l.mu.Lock()
			if len(l.sealed) == 0 {
				l.mu.Unlock()
				break
			}
			b := l.sealed[0]
			l.sealed = append(l.sealed[:0], l.sealed[1:]...)
			size := b.bytesUsed()
			l.held.Add(size)
			l.cond.Broadcast()
			l.mu.Unlock()
			l.encode(b)
			l.held.Add(-size)
		}
	}
}

// lister lists the segments written since the last listing every
// commitEvery, in a goroutine of its own: a listing rebuilds the views
// (their SQL names every file) and commits DuckDB's catalog, which takes
// milliseconds that encoding and syncing must not wait for. A listing costs
// about 8 ms per 1,000 listed files (segments wait for the life cycle's
// merge), so the interval grows to ten times the last listing's duration:
// at most a tenth of a core however many segments are listed.
func (l *RawLog) lister() {
	ctx := context.Background()
	next := time.NewTimer(commitEvery)
	defer next.Stop()
	for {
		select {
		case <-next.C:
		case <-l.stop:
			return
		}
		l.ulMu.Lock()
		n := len(l.unlisted)
		l.ulMu.Unlock()
		wait := commitEvery
		if n > 0 && l.s.passMu.TryLock() { // else a life-cycle pass holds the manifest
			start := time.Now()
			err := l.commit(ctx)
			l.s.passMu.Unlock()
			if err != nil {
				l.log.Error("raw flow log: listing segments failed; retrying", "err", err)
			}
			wait = max(wait, 10*time.Since(start))
		}
		next.Reset(wait)
	}
}

// encode encodes a sealed buffer and hands the bytes to the syncer; the
// buffer goes back for reuse at once (the file's bytes, a quarter of the
// buffer's, are all that is held while it is written, synced and read back).
func (l *RawLog) encode(b *rawBuffer) {
	data := <-l.spare
	b.finish()
	data.Reset()
	err := encodeParquet(data, b.cols, b.rows, &l.pages)
	seg := encodedSegment{data: data, meta: segmentMeta{part: b.part, rows: b.rows, packets: b.packets, bytes: b.bytes},
		held: append([]*core.Batch{}, b.held...)}
	if len(b.origins) > 0 {
		seg.origins = maps.Clone(b.origins)
	}
	l.mu.Lock()
	l.recycle(b)
	l.mu.Unlock()
	if err != nil {
		l.lose(seg, err)
		return
	}
	l.held.Add(int64(data.Len()))
	l.encoded <- seg
}

// syncer writes and syncs the encoded segments (reading one back at most
// every verifyEvery) and leaves them to the lister.
func (l *RawLog) syncer() {
	ctx := context.Background()
	var verified time.Time
	for seg := range l.encoded {
		verify := time.Since(verified) >= verifyEvery
		if verify {
			verified = time.Now()
		}
		f, err := l.s.writeSegment(ctx, l.wconn, seg.data.Bytes(), seg.meta, l.part, verify)
		l.held.Add(-int64(seg.data.Len()))
		if err != nil {
			l.lose(seg, err)
			continue
		}
		l.ulMu.Lock()
		l.unlisted = append(l.unlisted, rawSegment{f: f, held: seg.held, origins: seg.origins})
		l.ulMu.Unlock()
		l.spare <- seg.data
		l.pending.Done()
	}
}

// lose gives up a segment that could not be encoded or written: its flows
// are counted and logged, and its held batches fail (they come again).
func (l *RawLog) lose(seg encodedSegment, err error) {
	m := seg.meta
	l.log.Error("raw flow log: segment lost", "flows", m.rows, "packets", m.packets, "bytes", m.bytes, "err", err)
	l.onLost(m.rows)
	for _, h := range seg.held {
		h.Fail()
		h.Release()
	}
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	// The failed batches come again: accept them.
	for w := range seg.origins {
		delete(l.buffered, w)
	}
	l.mu.Unlock()
	l.spare <- seg.data
	l.pending.Done()
}

// segmentMeta is what a segment must hold: its partition and totals.
type segmentMeta struct {
	part           int64
	rows           int
	packets, bytes uint64
}

// commit lists the written segments in one transaction. Called with
// passMu held.
func (l *RawLog) commit(ctx context.Context) error {
	l.ulMu.Lock()
	segs := append([]rawSegment{}, l.unlisted...)
	l.ulMu.Unlock()
	if len(segs) == 0 {
		return nil
	}
	files := make([]newFile, len(segs))
	var rows uint64
	origins := map[string]uint64{}
	for i, u := range segs {
		files[i] = u.f
		rows += u.f.rows
		for w, seq := range u.origins {
			origins[w] = max(origins[w], seq)
		}
	}
	// The writers' highest sequences go in the same transaction as the
	// listing (statements without an expected row count).
	var upserts []string
	for w, seq := range origins {
		upserts = append(upserts, "INSERT OR REPLACE INTO flowline_origins VALUES ("+quote(w)+", "+strconv.FormatUint(seq, 10)+")")
	}
	l.s.mu.Lock()
	gen := l.s.gen
	l.s.mu.Unlock()
	if _, err := l.s.pconn.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	if err := l.s.commitFiles(ctx, gen, files, nil, nil, upserts, nil); err != nil {
		return err
	}
	l.s.mu.Lock()
	for w, seq := range origins {
		l.s.origins[w] = max(l.s.origins[w], seq)
	}
	l.s.mu.Unlock()
	for _, u := range segs {
		l.s.release(u.f.path)
		for _, h := range u.held {
			h.Release()
		}
	}
	l.ulMu.Lock()
	n := copy(l.unlisted, l.unlisted[len(segs):])
	clear(l.unlisted[n:])
	l.unlisted = l.unlisted[:n]
	l.ulMu.Unlock()
	l.onCommit(int(rows))
	return nil
}

// writeSegment writes an encoded segment file and syncs it; with verify it
// reads the file's totals back with DuckDB (they must equal the buffer's);
// then it renames the file into place. The file stays reserved (reconcile
// leaves it alone) until the caller lists it.
func (s *Store) writeSegment(ctx context.Context, c *sql.Conn, data []byte, b segmentMeta, part int64, verify bool) (newFile, error) {
	f := s.newFileEntry(RawTier, rawLogVersion, rawMask, b.part, b.part+part)
	s.reserve(f.path)
	fail := func(err error) (newFile, error) {
		os.Remove(f.abs)
		s.release(f.path)
		return f, err
	}
	if err := os.MkdirAll(filepath.Dir(f.abs), 0o755); err != nil {
		return fail(err)
	}
	tmp := f.abs + ".tmp"
	defer os.Remove(tmp)
	if err := writeFileSync(tmp, data); err != nil {
		return fail(err)
	}
	if !verify {
		f.rows, f.flows, f.packets, f.bytes = uint64(b.rows), uint64(b.rows), b.packets, b.bytes
	} else if err := c.QueryRowContext(ctx, fmt.Sprintf(
		"SELECT count(*), coalesce(sum(flows), 0)::UBIGINT, coalesce(sum(packets), 0)::UBIGINT, coalesce(sum(bytes), 0)::UBIGINT FROM read_parquet(%s)", quote(tmp))).
		Scan(&f.rows, &f.flows, &f.packets, &f.bytes); err != nil {
		return fail(fmt.Errorf("reading back %s: %w", tmp, err))
	}
	if f.rows != uint64(b.rows) || f.flows != uint64(b.rows) || f.packets != b.packets || f.bytes != b.bytes {
		return fail(fmt.Errorf("segment %s holds %d rows, %d packets, %d bytes; its buffer %d, %d, %d", tmp, f.rows, f.packets, f.bytes, b.rows, b.packets, b.bytes))
	}
	st, err := os.Stat(tmp)
	if err != nil {
		return fail(err)
	}
	f.fileBytes = uint64(st.Size())
	if err := os.Rename(tmp, f.abs); err != nil {
		return fail(err)
	}
	if err := syncDir(filepath.Dir(f.abs)); err != nil {
		return fail(err)
	}
	return f, nil
}
