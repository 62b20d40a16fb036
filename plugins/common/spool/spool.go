// Package spool is the bounded buffer between an output's Write and the
// goroutine that delivers to a server that can go away (outputs.mysql,
// outputs.amqp, outputs.influxdb): memory first, then one spool file per
// chunk on disk, then nothing. Chunks leave in the order they arrived, and
// the spool files survive a restart.
//
// An output uses it like this:
//
//	// Init: one spool per output instance, in a directory of its own under
//	// env.DataDir ("" keeps everything in memory and loses it at exit).
//	s := spool.New(spool.Config[T]{Dir: dir, Magic: "FLXXXXX1", Ext: ".chunk",
//		MaxItems: 1_000_000, MaxBytes: 1 << 30, Codec: myCodec{}})
//	if err := s.Open(0); err != nil { ... } // lists what a previous run left
//
//	// Write: copy the batch into items the output owns and push them as one
//	// chunk; Push never blocks. What fits neither memory nor spool is
//	// returned, and the output counts it as dropped and logs it.
//	if dropped, err := s.Push(items, tag); dropped > 0 { count and log err }
//
//	// The delivering goroutine, until Close:
//	for {
//		// The oldest chunk(s), loaded from disk if spooled; an unreadable
//		// spool file is set aside (renamed *.bad) and reported to lost.
//		group := s.PeekReadable(maxItems, func(n int, err error) { count n as dropped, log err })
//		if len(group) == 0 { wait on s.Notify(); continue }
//		deliver group (retry while the server is away) ...
//		s.Commit(group)               // removes them and their files
//	}
//
//	// Close: after the goroutine stopped, spill memory to disk for the next start.
//	lost, err := s.Spill() // count and log lost
//
// Order: memory holds the oldest chunks. Once a chunk had to go to disk,
// every later chunk goes to disk too until the spool is drained, so the
// order is kept across memory and disk and across restarts (chunks are
// numbered, and a new process numbers after the files it finds).
//
// A chunk carries a Tag, an int64 the spool keeps (also in the file) and
// never interprets: Peek returns consecutive chunks of the same Tag only
// (outputs.mysql tags chunks with their refresh time and writes a refresh in
// one transaction; an output that does not group uses tag 0).
//
// Files: "<seq, 20 digits><Ext>", written to a temporary name, fsynced and
// renamed, holding Magic, the sequence number, the tag, the item count, the
// items as the Codec encodes them, and a CRC-32 of all that. A file that is
// truncated, has a bad checksum or does not decode is reported by Peek
// (never a panic, also when the Codec panics on it) and SetAside renames it
// to *.bad so that the rest can flow.
//
// The spool counts nothing itself: drops, retries and writes are the
// output's metrics. Sizes gives what it needs for gauges.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Codec encodes a chunk's items into a spool file and back. Decode gets the
// bytes Append wrote (checksum verified) and the item count; it must return
// an error, not panic, on bytes it cannot decode.
type Codec[T any] interface {
	Append(dst []byte, items []T) []byte
	Decode(payload []byte, n int) ([]T, error)
}

// Config describes a spool.
type Config[T any] struct {
	// Dir holds the spool files; "" means memory only (no spool).
	Dir string
	// Magic starts every file (it names the format, e.g. "FLMYSQL1");
	// a file with another start is reported as corrupt.
	Magic string
	// Ext is the spool files' extension, e.g. ".rows" (default ".chunk").
	Ext string
	// MaxItems bounds the items held in memory. A single chunk larger than
	// MaxItems is still taken when memory is empty.
	MaxItems int
	// MaxBytes bounds the spool files' total size (0: no spool).
	MaxBytes int64
	// Codec encodes items for the files.
	Codec Codec[T]
}

// Chunk is the items of one Push, numbered in arrival order. Items is nil
// for a chunk that waits on disk until Peek loads it.
type Chunk[T any] struct {
	// Seq numbers the chunk; later chunks have larger numbers, also
	// across restarts.
	Seq uint64
	// Tag is the caller's label given to Push.
	Tag int64
	// Items are the chunk's items (nil while only on disk).
	Items []T
	// N is the number of items (0 for a file whose header is unreadable).
	N int

	file     string
	size     int64
	memBytes int64 // the items' memory while they are in memory
}

// Spool is a bounded FIFO of chunks in memory and on disk. It is safe for
// one pushing and one delivering goroutine (any number, in fact: every
// method locks).
type Spool[T any] struct {
	cfg      Config[T]
	mu       sync.Mutex
	mem      []*Chunk[T]
	memItems int
	memBytes atomic.Int64
	disk     []*Chunk[T]
	diskSize int64
	nextSeq  uint64
	notify   chan struct{}
	scratch  []byte
	lastPush int64
	listed   bool
}

// New returns a spool. Chunks are numbered from the current time in
// nanoseconds, so that a new process numbers above everything an earlier
// one wrote (to its files or to a ledger on the server) even before it can
// read them; Open moves the numbering above what it finds.
func New[T any](cfg Config[T]) *Spool[T] {
	if cfg.Ext == "" {
		cfg.Ext = ".chunk"
	}
	return &Spool[T]{cfg: cfg, nextSeq: uint64(time.Now().UnixNano()), notify: make(chan struct{}, 1)}
}

// SetNextSeq sets the number of the next chunk (tests use small numbers).
func (s *Spool[T]) SetNextSeq(seq uint64) {
	s.mu.Lock()
	s.nextSeq = seq
	s.mu.Unlock()
}

// DirFor is the spool directory of an output: configured when set
// (relative to dataDir), else dataDir/<kind>-<name> with the output's name
// made safe for a file name; "" when there is neither (memory only).
func DirFor(dataDir, configured, kind, name string) string {
	if configured != "" {
		if !filepath.IsAbs(configured) && dataDir != "" {
			return filepath.Join(dataDir, configured)
		}
		return configured
	}
	if dataDir == "" {
		return ""
	}
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, name)
	return filepath.Join(dataDir, kind+"-"+safe)
}

// Dir is the spool directory ("" without one).
func (s *Spool[T]) Dir() string { return s.cfg.Dir }

// Open lists the spool files a previous run left, oldest first (once; later
// calls only raise the numbering), removes unfinished temporary files, and
// makes new chunks number above those files and above committed (a
// sequence number the caller knows was delivered, e.g. from a ledger).
func (s *Spool[T]) Open(committed uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nextSeq <= committed {
		s.nextSeq = committed + 1
	}
	if s.cfg.Dir == "" || s.listed {
		return nil
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("spool directory: %w", err)
	}
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("spool directory: %w", err)
	}
	var found []*Chunk[T]
	var size int64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, s.cfg.Ext+".tmp") {
			os.Remove(filepath.Join(s.cfg.Dir, name)) // a write that did not finish
			continue
		}
		if !strings.HasSuffix(name, s.cfg.Ext) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, s.cfg.Ext), 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("spool directory: %w", err)
		}
		c := &Chunk[T]{Seq: seq, file: filepath.Join(s.cfg.Dir, name), size: info.Size()}
		found = append(found, c)
		size += c.size
		if seq >= s.nextSeq {
			s.nextSeq = seq + 1
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Seq < found[j].Seq })
	s.disk, s.diskSize = found, size
	s.listed = true
	return nil
}

// Push appends items as one chunk with the given tag. The spool keeps the
// slice: the caller must not reuse it. It returns how many items fit
// nowhere (memory full and the spool full, absent or not writable) with the
// reason; those are the caller's to count and log.
func (s *Spool[T]) Push(items []T, tag int64) (dropped int, err error) {
	if len(items) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &Chunk[T]{Seq: s.nextSeq, Tag: tag, Items: items, N: len(items)}
	s.lastPush = time.Now().UnixNano()
	if len(s.disk) == 0 && (s.memItems+len(items) <= s.cfg.MaxItems || s.memItems == 0) {
		s.nextSeq++
		s.mem = append(s.mem, c)
		s.memItems += len(items)
		c.memBytes = itemBytes(items)
		s.memBytes.Add(c.memBytes)
		s.wake()
		return 0, nil
	}
	if s.cfg.Dir == "" || s.cfg.MaxBytes <= 0 {
		return len(items), errors.New("memory buffer full and no spool")
	}
	if s.diskSize >= s.cfg.MaxBytes {
		return len(items), fmt.Errorf("memory buffer full and spool full (%d bytes)", s.diskSize)
	}
	if err := s.writeFile(c); err != nil {
		return len(items), err
	}
	if s.diskSize+c.size > s.cfg.MaxBytes {
		os.Remove(c.file)
		return len(items), fmt.Errorf("memory buffer full and spool full (%d bytes)", s.diskSize)
	}
	s.nextSeq++
	c.Items = nil
	s.disk = append(s.disk, c)
	s.diskSize += c.size
	s.wake()
	return 0, nil
}

// Notify is signalled (without blocking, coalesced) when a chunk arrives.
func (s *Spool[T]) Notify() <-chan struct{} { return s.notify }

func (s *Spool[T]) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// writeFile writes c to its spool file, atomically: a temporary file
// renamed into place after fsync.
func (s *Spool[T]) writeFile(c *Chunk[T]) error {
	buf := append(s.scratch[:0], s.cfg.Magic...)
	buf = binary.AppendUvarint(buf, c.Seq)
	buf = binary.AppendVarint(buf, c.Tag)
	buf = binary.AppendUvarint(buf, uint64(len(c.Items)))
	buf = s.cfg.Codec.Append(buf, c.Items)
	buf = binary.BigEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf))
	s.scratch = buf[:0]
	name := filepath.Join(s.cfg.Dir, fmt.Sprintf("%020d%s", c.Seq, s.cfg.Ext))
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool: %w", err)
	}
	c.file, c.size = name, int64(len(buf))
	return nil
}

// ErrCorrupt is wrapped by the error Peek returns for a spool file that
// cannot be read back.
var ErrCorrupt = errors.New("spool file is corrupt")

// readFile loads a spooled chunk's items.
func (s *Spool[T]) readFile(c *Chunk[T]) (err error) {
	data, err := os.ReadFile(c.file)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	bad := func(why string) error { return fmt.Errorf("%w: %s (%s)", ErrCorrupt, c.file, why) }
	magic := s.cfg.Magic
	if len(data) < len(magic)+4 || string(data[:len(magic)]) != magic {
		return bad("no header")
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	p := body[len(magic):]
	seq, n := binary.Uvarint(p)
	if n <= 0 || seq != c.Seq {
		return bad("sequence")
	}
	p = p[n:]
	tag, n := binary.Varint(p)
	if n <= 0 {
		return bad("tag")
	}
	p = p[n:]
	cnt, n := binary.Uvarint(p)
	if n <= 0 || cnt > uint64(len(p)) {
		return bad("item count")
	}
	c.N = int(cnt) // known even if the rest is damaged: the caller counts it
	if crc32.ChecksumIEEE(body) != sum {
		return bad("checksum")
	}
	defer func() {
		if r := recover(); r != nil {
			err = bad(fmt.Sprintf("decoder panicked: %v", r))
		}
	}()
	items, derr := s.cfg.Codec.Decode(p[n:], int(cnt))
	if derr != nil {
		return bad(derr.Error())
	}
	if len(items) != int(cnt) {
		return bad(fmt.Sprintf("%d items decoded, header says %d", len(items), cnt))
	}
	c.Items, c.Tag = items, tag
	return nil
}

// Peek returns the oldest chunks without removing them: consecutive chunks
// of the same Tag holding at most maxItems items together, and at least one
// chunk (maxItems 0 returns exactly the oldest). A spooled chunk is loaded
// from its file. An unreadable file is returned alone with the error (it
// wraps ErrCorrupt, or the read error); the caller counts its N items as
// lost and calls SetAside. An empty spool returns nothing.
func (s *Spool[T]) Peek(maxItems int) ([]*Chunk[T], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Chunk[T]
	items := 0
	for i := 0; i < len(s.mem)+len(s.disk); i++ {
		var c *Chunk[T]
		if i < len(s.mem) {
			c = s.mem[i]
		} else {
			c = s.disk[i-len(s.mem)]
		}
		if c.Items == nil && c.file != "" {
			// Loaded before the check: a listed file's tag and count are
			// known only from its contents.
			if err := s.readFile(c); err != nil {
				if len(out) > 0 {
					return out, nil
				}
				return []*Chunk[T]{c}, err
			}
		}
		if len(out) > 0 && (c.Tag != out[0].Tag || items+c.N > maxItems) {
			break
		}
		out = append(out, c)
		items += c.N
	}
	return out, nil
}

// PeekReadable is Peek that sets unreadable spool files aside itself: it
// calls lost with each one's item count (0 when even its header is
// unreadable) and error, for the caller to count and log, and goes on with
// the next chunk.
func (s *Spool[T]) PeekReadable(maxItems int, lost func(n int, err error)) []*Chunk[T] {
	for {
		group, err := s.Peek(maxItems)
		if err == nil {
			return group
		}
		lost(group[0].N, err)
		s.SetAside(group[0])
	}
}

// Commit removes the chunks Peek returned (they were delivered), oldest
// first, with their files.
func (s *Spool[T]) Commit(cs []*Chunk[T]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		if len(s.mem) > 0 && s.mem[0] == c {
			s.mem[0] = nil
			s.mem = s.mem[1:]
			s.memItems -= c.N
			s.memBytes.Add(-c.memBytes)
			continue
		}
		if len(s.disk) > 0 && s.disk[0] == c {
			s.disk[0] = nil
			s.disk = s.disk[1:]
			s.diskSize -= c.size
			os.Remove(c.file)
		}
	}
}

// SetAside moves an unreadable spool file out of the way (renamed to
// *.bad, kept for inspection) so that the rest can flow.
func (s *Spool[T]) SetAside(c *Chunk[T]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.disk) > 0 && s.disk[0] == c {
		s.disk[0] = nil
		s.disk = s.disk[1:]
		s.diskSize -= c.size
		os.Rename(c.file, c.file+".bad")
	}
}

// Spill writes the chunks still in memory to spool files (at Close, after
// the delivering goroutine stopped), so that the next start delivers them
// first. It returns how many items it could not write, with the reason.
// Spill does not check MaxBytes: what the process held must not be lost
// for want of room that was only a bound on growth.
func (s *Spool[T]) Spill() (lost int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var spilled []*Chunk[T]
	for _, c := range s.mem {
		if s.cfg.Dir == "" {
			lost += c.N
			continue
		}
		if werr := s.writeFile(c); werr != nil {
			lost += c.N
			err = werr
			continue
		}
		spilled = append(spilled, c)
		s.diskSize += c.size
	}
	s.disk = append(spilled, s.disk...)
	s.mem, s.memItems = nil, 0
	s.memBytes.Store(0)
	return lost, err
}

// Sizes reports the items in memory, the bytes of the spool files and the
// number of chunks waiting in both.
func (s *Spool[T]) Sizes() (memItems int, spoolBytes int64, chunks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memItems, s.diskSize, len(s.mem) + len(s.disk)
}

// MemBytes estimates the memory of the items held in memory (the engine's
// budget counts it): the bytes of []byte items, else the items' size. It
// does not lock.
func (s *Spool[T]) MemBytes() int64 { return s.memBytes.Load() }

// itemBytes estimates the memory of items.
func itemBytes[T any](items []T) int64 {
	if bs, ok := any(items).([][]byte); ok {
		var n int64
		for _, b := range bs {
			n += int64(cap(b)) + 24
		}
		return n
	}
	var zero T
	return int64(len(items)) * int64(unsafe.Sizeof(zero))
}

// Empty reports whether nothing waits.
func (s *Spool[T]) Empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mem) == 0 && len(s.disk) == 0
}

// DropThrough removes the oldest chunks numbered up to seq (a ledger on the
// server says an earlier run delivered them but could not learn it before
// it stopped).
func (s *Spool[T]) DropThrough(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.mem) > 0 && s.mem[0].Seq <= seq {
		s.memItems -= s.mem[0].N
		s.memBytes.Add(-s.mem[0].memBytes)
		s.mem = s.mem[1:]
	}
	for len(s.disk) > 0 && s.disk[0].Seq <= seq {
		s.diskSize -= s.disk[0].size
		os.Remove(s.disk[0].file)
		s.disk = s.disk[1:]
	}
}

// QuietFor reports how long no chunk has arrived.
func (s *Spool[T]) QuietFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(time.Now().UnixNano() - s.lastPush)
}

// Bytes is a Codec for chunks of byte strings (encoded messages, lines of
// line protocol): each item is a length and its bytes.
type Bytes struct{}

// Append encodes items.
func (Bytes) Append(dst []byte, items [][]byte) []byte {
	for _, it := range items {
		dst = binary.AppendUvarint(dst, uint64(len(it)))
		dst = append(dst, it...)
	}
	return dst
}

// Decode decodes n items written by Append. The items share one copy of
// payload.
func (Bytes) Decode(payload []byte, n int) ([][]byte, error) {
	if n > len(payload) {
		return nil, fmt.Errorf("%d items in %d bytes", n, len(payload))
	}
	buf := append([]byte(nil), payload...)
	out := make([][]byte, n)
	for i := range out {
		l, k := binary.Uvarint(buf)
		if k <= 0 || l > uint64(len(buf)-k) {
			return nil, fmt.Errorf("item %d truncated", i)
		}
		out[i] = buf[k : k+int(l) : k+int(l)]
		buf = buf[k+int(l):]
	}
	if len(buf) != 0 {
		return nil, fmt.Errorf("%d bytes after the last item", len(buf))
	}
	return out, nil
}
