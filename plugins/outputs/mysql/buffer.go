package mysql

import (
	"bufio"
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
	"time"
)

// chunk is the rows of one Write, numbered in arrival order. A chunk lives
// in memory or, when memory is full (or the spool is not empty, to keep the
// order), in a spool file of its own; rows is nil for a spooled chunk until
// the flusher loads it.
type chunk struct {
	seq  uint64
	rows []row
	// updated is the refresh time of the rows: consecutive chunks of the
	// same refresh are written in one transaction.
	updated int64
	n       int
	// file is the chunk's spool file ("" for a chunk in memory) and size its
	// length in bytes.
	file string
	size int64
}

// buffer is the bounded FIFO between Write and the flusher: memory first,
// then spool files in dir, then nothing (rows that fit nowhere are counted
// as dropped and logged by the caller).
//
// Order: chunks leave in the order they arrived. Memory holds the oldest
// chunks; once a chunk had to be spooled, every later chunk is spooled too
// until the spool is drained.
type buffer struct {
	mu       sync.Mutex
	mem      []*chunk
	memRows  int
	maxRows  int
	spool    []*chunk
	spoolSz  int64
	maxSpool int64
	dir      string
	nextSeq  uint64
	notify   chan struct{}
	scratch  []byte
	// lastPush is when the newest chunk arrived (Unix nanoseconds).
	lastPush int64
	// listed says the spool directory was read (once, at the first open).
	listed bool
}

// newBuffer numbers chunks from the current time in nanoseconds, so that a
// new process's numbers are above every number a previous process wrote to
// the ledger, even before the ledger can be read (the database may be away
// at start): the ledger check then never mistakes a new chunk for an old one.
func newBuffer(dir string, maxRows int, maxSpool int64) *buffer {
	return &buffer{dir: dir, maxRows: maxRows, maxSpool: maxSpool, nextSeq: uint64(time.Now().UnixNano()), notify: make(chan struct{}, 1)}
}

const spoolMagic = "FLMYSQL1"

// open lists the spool files a previous run left, oldest first, and makes
// new chunks number after them and after the ledger's last committed seq.
func (b *buffer) open(committed uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nextSeq <= committed {
		b.nextSeq = committed + 1
	}
	if b.dir == "" || b.listed {
		return nil
	}
	b.listed = true
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return fmt.Errorf("spool directory: %w", err)
	}
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		return fmt.Errorf("spool directory: %w", err)
	}
	b.spool, b.spoolSz = nil, 0
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(b.dir, name)) // a spill that did not finish
			continue
		}
		if !strings.HasSuffix(name, ".rows") {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".rows"), 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("spool directory: %w", err)
		}
		c := &chunk{seq: seq, file: filepath.Join(b.dir, name), size: info.Size()}
		b.spool = append(b.spool, c)
		b.spoolSz += c.size
		if seq >= b.nextSeq {
			b.nextSeq = seq + 1
		}
	}
	sort.Slice(b.spool, func(i, j int) bool { return b.spool[i].seq < b.spool[j].seq })
	return nil
}

// push appends rows as one chunk. It returns how many rows did not fit
// (memory and spool full, or the spool file could not be written) and the
// error that says why, if one did.
func (b *buffer) push(rows []row) (dropped int, err error) {
	if len(rows) == 0 {
		return 0, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := &chunk{seq: b.nextSeq, rows: rows, updated: rows[0].Updated, n: len(rows)}
	b.lastPush = time.Now().UnixNano()
	if len(b.spool) == 0 && (b.memRows+len(rows) <= b.maxRows || b.memRows == 0) {
		b.nextSeq++
		b.mem = append(b.mem, c)
		b.memRows += len(rows)
		b.wake()
		return 0, nil
	}
	if b.dir == "" || b.maxSpool <= 0 {
		return len(rows), errors.New("memory buffer full and no spool")
	}
	if b.spoolSz >= b.maxSpool {
		return len(rows), fmt.Errorf("memory buffer full and spool full (%d bytes)", b.spoolSz)
	}
	if err := b.writeFile(c); err != nil {
		return len(rows), err
	}
	if b.spoolSz+c.size > b.maxSpool {
		os.Remove(c.file)
		return len(rows), fmt.Errorf("memory buffer full and spool full (%d bytes)", b.spoolSz)
	}
	b.nextSeq++
	c.rows = nil
	b.spool = append(b.spool, c)
	b.spoolSz += c.size
	b.wake()
	return 0, nil
}

func (b *buffer) wake() {
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// writeFile writes c's rows to its spool file (atomically: a temporary file
// renamed into place after fsync).
func (b *buffer) writeFile(c *chunk) error {
	buf := append(b.scratch[:0], spoolMagic...)
	buf = binary.AppendUvarint(buf, c.seq)
	buf = binary.AppendVarint(buf, c.updated)
	buf = binary.AppendUvarint(buf, uint64(len(c.rows)))
	for i := range c.rows {
		buf = appendRow(buf, &c.rows[i])
	}
	buf = binary.BigEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf))
	b.scratch = buf[:0]
	name := filepath.Join(b.dir, fmt.Sprintf("%020d.rows", c.seq))
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, err = w.Write(buf)
	if err == nil {
		err = w.Flush()
	}
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

// readFile loads a spooled chunk's rows.
func readFile(c *chunk) error {
	data, err := os.ReadFile(c.file)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	bad := func(why string) error { return fmt.Errorf("spool file %s is corrupt (%s)", c.file, why) }
	if len(data) < len(spoolMagic)+4 || string(data[:len(spoolMagic)]) != spoolMagic {
		return bad("no header")
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return bad("checksum")
	}
	p := body[len(spoolMagic):]
	seq, n := binary.Uvarint(p)
	if n <= 0 || seq != c.seq {
		return bad("sequence")
	}
	p = p[n:]
	upd, n := binary.Varint(p)
	if n <= 0 {
		return bad("refresh time")
	}
	p = p[n:]
	cnt, n := binary.Uvarint(p)
	if n <= 0 || cnt > uint64(len(p)) {
		return bad("row count")
	}
	p = p[n:]
	rows := make([]row, cnt)
	for i := range rows {
		if p, err = decodeRow(p, &rows[i]); err != nil {
			return bad(err.Error())
		}
	}
	c.rows, c.updated, c.n = rows, upd, len(rows)
	return nil
}

// head returns the oldest chunks to write in one transaction: consecutive
// chunks of the same refresh, up to maxRows rows (at least one chunk). A
// spooled chunk is loaded from its file; a file that cannot be read is
// reported with the error (the caller sets it aside).
func (b *buffer) head(maxRows int) ([]*chunk, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*chunk
	rows := 0
	all := append(append([]*chunk{}, b.mem...), b.spool...)
	for _, c := range all {
		if c.rows == nil && c.file != "" {
			if err := readFile(c); err != nil {
				if len(out) > 0 {
					return out, nil
				}
				return []*chunk{c}, err
			}
		}
		if len(out) > 0 && (c.updated != out[0].updated || rows+c.n > maxRows) {
			break
		}
		out = append(out, c)
		rows += c.n
	}
	return out, nil
}

// commit removes the chunks head returned (they are written) and their files.
func (b *buffer) commit(cs []*chunk) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range cs {
		if len(b.mem) > 0 && b.mem[0] == c {
			b.mem[0] = nil
			b.mem = b.mem[1:]
			b.memRows -= c.n
			continue
		}
		if len(b.spool) > 0 && b.spool[0] == c {
			b.spool[0] = nil
			b.spool = b.spool[1:]
			b.spoolSz -= c.size
			os.Remove(c.file)
		}
	}
}

// setAside moves an unreadable spool file out of the way (renamed *.bad) so
// that the rest can flow; it is counted as dropped by the caller.
func (b *buffer) setAside(c *chunk) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.spool) > 0 && b.spool[0] == c {
		b.spool = b.spool[1:]
		b.spoolSz -= c.size
		os.Rename(c.file, c.file+".bad")
	}
}

// spill writes the chunks still in memory to spool files (at Close), so
// that the next start writes them. It returns the rows it could not spool.
func (b *buffer) spill() (lost int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.mem {
		if b.dir == "" {
			lost += c.n
			continue
		}
		if werr := b.writeFile(c); werr != nil {
			lost += c.n
			err = werr
			continue
		}
		b.spoolSz += c.size
	}
	b.mem, b.memRows = nil, 0
	return lost, err
}

// sizes reports the rows in memory, the rows waiting in total and the
// spool's bytes.
func (b *buffer) sizes() (memRows int, spoolBytes int64, chunks int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.memRows, b.spoolSz, len(b.mem) + len(b.spool)
}

// empty reports whether nothing waits.
func (b *buffer) empty() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.mem) == 0 && len(b.spool) == 0
}

// dropCommitted removes chunks the ledger says were committed (a previous
// run wrote them but could not learn it before it stopped).
func (b *buffer) dropCommitted(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.mem) > 0 && b.mem[0].seq <= seq {
		b.memRows -= b.mem[0].n
		b.mem = b.mem[1:]
	}
	for len(b.spool) > 0 && b.spool[0].seq <= seq {
		b.spoolSz -= b.spool[0].size
		os.Remove(b.spool[0].file)
		b.spool = b.spool[1:]
	}
}

// quietFor reports how long no chunk has arrived.
func (b *buffer) quietFor() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Duration(time.Now().UnixNano() - b.lastPush)
}
