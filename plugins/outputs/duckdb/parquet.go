package duckdb

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"os"
	"unsafe"
)

// This file is a minimal Parquet writer for the raw flow log: one row group
// of INT32/INT64 columns, each one data page in the DELTA_BINARY_PACKED
// encoding (no general-purpose compression), with definition levels for
// the optional (nullable) ones. Delta encoding costs a few nanoseconds a
// value and turns constant columns (exporter, upper address halves, masks,
// sampling rate, flows) into almost nothing and near-sorted ones (times)
// into small numbers; DuckDB reads it natively. It exists because DuckDB's
// own Parquet writer (COPY) costs 430 ns a flow on one core unsorted, 1.3 µs
// sorted: too slow for a raw log at millions of flows a second. The life
// cycle's merge then rewrites a partition with DuckDB, sorted and zstd.
// Format: https://parquet.apache.org/docs/file-format/ (thrift compact
// protocol for the metadata).

// Parquet physical types, converted types and encodings used here.
const (
	pqInt32 = 1
	pqInt64 = 2

	pqConvNone            = -1
	pqConvTimestampMillis = 9
	pqConvTimestampMicros = 10
	pqConvUint8           = 11
	pqConvUint16          = 12
	pqConvUint32          = 13
	pqConvUint64          = 14

	pqEncPlain = 0
	pqEncRLE   = 3
	pqEncDelta = 5
	pqEncDict  = 8 // RLE_DICTIONARY
)

// pqColumn is one column's values, stored little endian in size bytes each
// (1, 2, 4 or 8: an INT32 column of UTINYINT values keeps one byte a row),
// and for an optional column one definition level (0 null, 1 present) per
// row once a null appeared (before that, defs is empty and every row is
// present); b holds only the present values. A column filled by putSparse
// stores nothing while every value is 0 (the upper halves of IPv4
// addresses) and counts those values in zeros.
type pqColumn struct {
	name     string
	phys     int32
	conv     int32
	optional bool
	size     int
	b        []byte
	defs     []byte
	zeros    int // leading zero values not in b (putSparse)
	rows     int // rows of an optional column (present or null)
	// dict says the column may be dictionary-encoded (low cardinality
	// expected). useDict is the encoding that won the last comparison and
	// probe counts segments until both are compared again.
	dict    bool
	useDict bool
	probe   int
}

func (c *pqColumn) reset() {
	c.b = c.b[:0]
	c.defs = c.defs[:0]
	c.zeros, c.rows = 0, 0
}

// count is the number of present values.
func (c *pqColumn) count() int { return c.zeros + len(c.b)/c.size }

// Typed appends of a present value to a required column (inlined in the
// raw flow log's add).
func (c *pqColumn) put8(v uint8)   { c.b = append(c.b, v) }
func (c *pqColumn) put16(v uint16) { c.b = binary.LittleEndian.AppendUint16(c.b, v) }
func (c *pqColumn) put32(v uint32) { c.b = binary.LittleEndian.AppendUint32(c.b, v) }
func (c *pqColumn) put64(v uint64) { c.b = binary.LittleEndian.AppendUint64(c.b, v) }

// present counts a present value of an optional column.
func (c *pqColumn) present() {
	if len(c.defs) > 0 {
		c.defs = append(c.defs, 1)
	}
	c.rows++
}

// null appends a null (optional columns only).
func (c *pqColumn) null() {
	if len(c.defs) == 0 {
		for range c.rows {
			c.defs = append(c.defs, 1)
		}
	}
	c.defs = append(c.defs, 0)
	c.rows++
}

// levels are the definition levels of an optional column.
func (c *pqColumn) levels() []byte {
	if len(c.defs) == 0 {
		for range c.rows {
			c.defs = append(c.defs, 1)
		}
	}
	return c.defs
}

// putZero appends a present 0 to an optional 8-byte column that is mostly 0.
func (c *pqColumn) putZero() {
	c.present()
	if len(c.b) == 0 {
		c.zeros++
		return
	}
	c.b = binary.LittleEndian.AppendUint64(c.b, 0)
}

// putSparse appends a present value to an optional 8-byte column that is
// mostly 0.
func (c *pqColumn) putSparse(v uint64) {
	if v == 0 {
		c.putZero()
		return
	}
	c.present()
	if len(c.b) == 0 {
		c.b = append(c.b, make([]byte, 8*c.zeros)...)
		c.zeros = 0
	}
	c.b = binary.LittleEndian.AppendUint64(c.b, v)
}

// putOpt appends a present value to an optional 8-byte column.
func (c *pqColumn) putOpt(v uint64) {
	c.present()
	c.b = binary.LittleEndian.AppendUint64(c.b, v)
}

// values decodes the present values into dst.
func (c *pqColumn) values(dst []uint64) []uint64 {
	n := c.count()
	if cap(dst) < n {
		dst = make([]uint64, n)
	}
	dst = dst[:n]
	clear(dst[:c.zeros])
	out := dst[c.zeros:]
	if len(out) == 0 {
		return dst
	}
	if nativeLittleEndian {
		// The column's bytes as its native type: a tight widening loop
		// (decoding each value through binary.LittleEndian with its
		// bounds check took 12% of the raw log's CPU).
		p := unsafe.Pointer(unsafe.SliceData(c.b))
		switch c.size {
		case 1:
			for i, v := range c.b[:len(out)] {
				out[i] = uint64(v)
			}
		case 2:
			for i, v := range unsafe.Slice((*uint16)(p), len(out)) {
				out[i] = uint64(v)
			}
		case 4:
			for i, v := range unsafe.Slice((*uint32)(p), len(out)) {
				out[i] = uint64(v)
			}
		default:
			copy(out, unsafe.Slice((*uint64)(p), len(out)))
		}
		return dst
	}
	b := c.b
	switch c.size {
	case 1:
		for i := range out {
			out[i] = uint64(b[i])
		}
	case 2:
		for i := range out {
			out[i] = uint64(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case 4:
		for i := range out {
			out[i] = uint64(binary.LittleEndian.Uint32(b[4*i:]))
		}
	default:
		for i := range out {
			out[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
	}
	return dst
}

// view returns an 8-byte column's values without copying them (its bytes
// are little-endian uint64s, which this machine's are), or nil when they
// must be copied by values: narrower columns, leading zeros not stored, a
// big-endian machine. The slice is only read, before the column is reset.
func (c *pqColumn) view() []uint64 {
	if !nativeLittleEndian || c.size != 8 || c.zeros > 0 || len(c.b) == 0 {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(c.b))), len(c.b)/8)
}

// nativeLittleEndian says whether this machine stores integers as the
// columns do (Parquet's byte order).
var nativeLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// writeParquetFile writes rows rows of cols to path and syncs it.
func writeParquetFile(path string, cols []pqColumn, rows int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = encodeParquet(w, cols, rows, &pageEncoder{})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeFileSync writes data to path and syncs it.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// encodeParquet writes the file: magic, per column an optional dictionary
// page and one data page, footer. e's buffers are reused from one call to
// the next.
func encodeParquet(w io.Writer, cols []pqColumn, rows int, e *pageEncoder) error {
	type chunkMeta struct{ offset, dictOffset, size int64 }
	metas := make([]chunkMeta, len(cols))
	off := int64(4)
	if _, err := io.WriteString(w, "PAR1"); err != nil {
		return err
	}
	var th thrift
	for i := range cols {
		c := &cols[i]
		e.encode(c)
		start := off
		metas[i] = chunkMeta{offset: off, dictOffset: -1}
		if e.dictPage != nil {
			th.reset()
			th.i32(1, 2) // DICTIONARY_PAGE
			th.i32(2, int32(len(e.dictPage)))
			th.i32(3, int32(len(e.dictPage)))
			th.beginStruct(7) // DictionaryPageHeader
			th.i32(1, int32(e.dictLen))
			th.i32(2, pqEncPlain)
			th.endStruct()
			th.stop()
			if _, err := w.Write(th.buf); err != nil {
				return err
			}
			if _, err := w.Write(e.dictPage); err != nil {
				return err
			}
			metas[i].dictOffset = off
			off += int64(len(th.buf) + len(e.dictPage))
			metas[i].offset = off
		}
		th.reset()
		th.i32(1, 0) // DATA_PAGE
		th.i32(2, int32(len(e.body)))
		th.i32(3, int32(len(e.body)))
		th.beginStruct(5) // DataPageHeader
		th.i32(1, int32(rows))
		th.i32(2, e.encoding)
		th.i32(3, pqEncRLE) // definition levels
		th.i32(4, pqEncRLE) // repetition levels
		th.endStruct()
		th.stop()
		if _, err := w.Write(th.buf); err != nil {
			return err
		}
		if _, err := w.Write(e.body); err != nil {
			return err
		}
		off += int64(len(th.buf) + len(e.body))
		metas[i].size = off - start
	}
	// FileMetaData
	th.reset()
	th.i32(1, 1)
	th.listBegin(2, 12, len(cols)+1)
	th.elemStructBegin()
	th.binary(4, "schema")
	th.i32(5, int32(len(cols)))
	th.elemStructEnd()
	for _, c := range cols {
		th.elemStructBegin()
		th.i32(1, c.phys)
		rep := int32(0)
		if c.optional {
			rep = 1
		}
		th.i32(3, rep)
		th.binary(4, c.name)
		if c.conv != pqConvNone {
			th.i32(6, c.conv)
		}
		th.elemStructEnd()
	}
	th.i64(3, int64(rows))
	th.listBegin(4, 12, 1)
	th.elemStructBegin() // RowGroup
	th.listBegin(1, 12, len(cols))
	var total int64
	for i, c := range cols {
		m := metas[i]
		start := m.offset
		if m.dictOffset >= 0 {
			start = m.dictOffset
		}
		th.elemStructBegin() // ColumnChunk
		th.i64(2, start)
		th.beginStruct(3) // ColumnMetaData
		th.i32(1, c.phys)
		th.listBegin(2, 5, 4)
		th.elemI32(pqEncPlain)
		th.elemI32(pqEncRLE)
		th.elemI32(pqEncDelta)
		th.elemI32(pqEncDict)
		th.listBegin(3, 8, 1)
		th.elemBinary(c.name)
		th.i32(4, 0) // UNCOMPRESSED
		th.i64(5, int64(rows))
		th.i64(6, m.size)
		th.i64(7, m.size)
		th.i64(9, m.offset)
		if m.dictOffset >= 0 {
			th.i64(11, m.dictOffset)
		}
		th.endStruct()
		th.elemStructEnd()
		total += m.size
	}
	th.i64(2, total)
	th.i64(3, int64(rows))
	th.elemStructEnd()
	th.stop()
	var tail [8]byte
	binary.LittleEndian.PutUint32(tail[:], uint32(len(th.buf)))
	copy(tail[4:], "PAR1")
	if _, err := w.Write(th.buf); err != nil {
		return err
	}
	_, err := w.Write(tail[:])
	return err
}

// pageEncoder encodes one column's pages, reusing its buffers.
type pageEncoder struct {
	vals     []uint64
	ids      []uint32
	dict     []uint64
	table    dictTable
	alt      []byte
	body     []byte
	dictPage []byte
	dictLen  int
	encoding int32
}

// maxDict is the largest dictionary tried: beyond it the indexes cost as
// much as deltas.
const maxDict = 1 << 14

// encode fills body (definition levels and values) and, for a dictionary-
// encoded column, dictPage: the smaller of delta and dictionary encoding
// when the column may take a dictionary.
func (e *pageEncoder) encode(c *pqColumn) {
	vals := c.view()
	if vals == nil {
		e.vals = c.values(e.vals)
		vals = e.vals
	}
	e.body = e.body[:0]
	if c.optional {
		e.body = rleBits(append(e.body, 0, 0, 0, 0), c.levels())
		binary.LittleEndian.PutUint32(e.body, uint32(len(e.body)-4))
	}
	levels := len(e.body)
	e.encoding, e.dictPage = pqEncDelta, nil
	// Both encodings are compared every 16th segment; in between the
	// last winner is used alone.
	compare := c.dict && len(vals) > 0 && c.probe == 0
	if c.dict {
		c.probe = (c.probe + 1) % 16
	}
	if compare || !c.useDict || len(vals) == 0 {
		e.body = deltaBinaryPacked(e.body, vals, c.phys == pqInt32)
		if !compare {
			return
		}
	}
	var ok bool
	e.dict, e.ids, ok = e.table.build(vals, maxDict, e.dict[:0], e.ids[:0])
	if !ok {
		c.useDict = false
		if !compare { // the dictionary outgrew the limit: delta after all
			e.body = deltaBinaryPacked(e.body[:levels], vals, c.phys == pqInt32)
		}
		return
	}
	width := max(bits.Len(uint(len(e.dict)-1)), 1)
	size := 8
	if c.phys == pqInt32 {
		size = 4
	}
	if compare {
		c.useDict = len(e.dict)*size+len(vals)*width/8+len(vals)/500+1 < len(e.body)-levels
		if !c.useDict {
			return // delta is smaller
		}
	}
	e.alt = append(e.alt[:0], e.body[:levels]...)
	e.alt = append(e.alt, byte(width))
	e.alt = hybridBitPacked(e.alt, e.ids, width)
	e.body, e.alt = e.alt, e.body
	e.dictPage = e.dictPage[:0]
	for _, v := range e.dict {
		if size == 4 {
			e.dictPage = binary.LittleEndian.AppendUint32(e.dictPage, uint32(v))
		} else {
			e.dictPage = binary.LittleEndian.AppendUint64(e.dictPage, v)
		}
	}
	e.dictLen = len(e.dict)
	e.encoding = pqEncDict
}

// dictTable maps values to dictionary indexes: open addressing, cleared by
// a generation counter, one 16-byte entry per slot (a probe reads one cache
// line).
type dictTable struct {
	slots []dictSlot
	cur   uint32
}

type dictSlot struct {
	key uint64
	idx uint32
	gen uint32
}

// build returns the distinct values of vals in order of appearance and each
// value's index, or false when there are more than limit.
func (t *dictTable) build(vals []uint64, limit int, dict []uint64, ids []uint32) ([]uint64, []uint32, bool) {
	size := 2 * limit
	if len(t.slots) != size {
		t.slots, t.cur = make([]dictSlot, size), 0
	}
	t.cur++
	mask := uint64(size - 1)
	shift := 64 - bits.Len(uint(size-1))
	for _, v := range vals {
		h := (v * 0x9E3779B97F4A7C15) >> shift
		for {
			sl := &t.slots[h]
			if sl.gen != t.cur {
				if len(dict) == limit {
					return dict, ids, false
				}
				*sl = dictSlot{key: v, idx: uint32(len(dict)), gen: t.cur}
				ids = append(ids, uint32(len(dict)))
				dict = append(dict, v)
				break
			}
			if sl.key == v {
				ids = append(ids, sl.idx)
				break
			}
			h = (h + 1) & mask
		}
	}
	return dict, ids, true
}

// hybridBitPacked appends ids in the RLE/bit-packing hybrid encoding as
// bit-packed runs of up to 63 groups of 8 (the last group padded with 0).
func hybridBitPacked(dst []byte, ids []uint32, w int) []byte {
	for len(ids) > 0 {
		n := min(len(ids), 63*8)
		groups := (n + 7) / 8
		dst = append(dst, byte(groups<<1|1))
		var acc uint64
		var nb int
		for j := 0; j < groups*8; j++ {
			var v uint64
			if j < n {
				v = uint64(ids[j])
			}
			acc |= v << nb
			nb += w
			if nb >= 32 {
				dst = binary.LittleEndian.AppendUint32(dst, uint32(acc))
				acc >>= 32
				nb -= 32
			}
		}
		for ; nb > 0; nb -= 8 {
			dst = append(dst, byte(acc))
			acc >>= 8
		}
		ids = ids[n:]
	}
	return dst
}

// rleBits appends 0/1 levels in the RLE/bit-packing hybrid encoding of bit
// width 1, as runs only (nulls are rare: addresses absent from a flow).
func rleBits(dst, levels []byte) []byte {
	for i := 0; i < len(levels); {
		j := i + 1
		for j < len(levels) && levels[j] == levels[i] {
			j++
		}
		dst = binary.AppendUvarint(dst, uint64(j-i)<<1)
		dst = append(dst, levels[i])
		i = j
	}
	return dst
}

// Delta encoding layout: blocks of 128 values in 4 miniblocks of 32.
const (
	deltaBlock     = 128
	deltaMiniBlock = 32
)

// deltaBinaryPacked appends vals in the DELTA_BINARY_PACKED encoding.
// Deltas wrap in the column's width (32 bits for INT32 columns).
func deltaBinaryPacked(dst []byte, vals []uint64, is32 bool) []byte {
	dst = binary.AppendUvarint(dst, deltaBlock)
	dst = binary.AppendUvarint(dst, deltaBlock/deltaMiniBlock)
	dst = binary.AppendUvarint(dst, uint64(len(vals)))
	if len(vals) == 0 {
		return binary.AppendVarint(dst, 0)
	}
	first := int64(vals[0])
	if is32 {
		first = int64(int32(uint32(vals[0])))
	}
	dst = binary.AppendVarint(dst, first)
	if constant(vals) { // every delta 0: blocks of zero width, nothing packed
		for i := 1; i < len(vals); i += deltaBlock {
			dst = append(dst, 0, 0, 0, 0, 0) // min delta 0, four widths 0
		}
		return dst
	}
	var deltas [deltaBlock]int64
	var maxes [deltaBlock / deltaMiniBlock]int64
	prev := vals[0]
	for i := 1; i < len(vals); i += deltaBlock {
		n := min(deltaBlock, len(vals)-i)
		block := vals[i : i+n]
		minD := int64(1<<63 - 1)
		for m := range maxes {
			maxes[m] = -1 << 63
		}
		// Deltas, the block's minimum and each miniblock's maximum: the
		// width of a miniblock is that of its maximum less the minimum.
		for j, v := range block {
			var d int64
			if is32 {
				d = int64(int32(uint32(v) - uint32(prev)))
			} else {
				d = int64(v - prev)
			}
			prev = v
			deltas[j] = d
			minD = min(minD, d)
			maxes[j/deltaMiniBlock] = max(maxes[j/deltaMiniBlock], d)
		}
		dst = binary.AppendVarint(dst, minD)
		var widths [deltaBlock / deltaMiniBlock]int
		for m := range widths {
			if m*deltaMiniBlock < n {
				widths[m] = bits.Len64(uint64(maxes[m] - minD))
			}
		}
		for _, wd := range widths {
			dst = append(dst, byte(wd))
		}
		for m, wd := range widths {
			lo := m * deltaMiniBlock
			if lo >= n {
				break
			}
			dst = packMiniBlock(dst, deltas[lo:min(lo+deltaMiniBlock, n)], minD, wd)
		}
	}
	return dst
}

// constant reports whether every value equals the first (the upper
// halves of IPv4 addresses, one exporter, flows = 1).
func constant(vals []uint64) bool {
	for _, v := range vals {
		if v != vals[0] {
			return false
		}
	}
	return true
}

// packMiniBlock bit-packs 32 values (d - minD, padded with zeros) of width
// w, least significant bit first.
func packMiniBlock(dst []byte, ds []int64, minD int64, w int) []byte {
	if w == 0 {
		return dst
	}
	var acc uint64
	var n int
	for j := 0; j < deltaMiniBlock; j++ {
		var v uint64
		if j < len(ds) {
			v = uint64(ds[j] - minD)
		}
		acc |= v << n
		if n+w >= 64 {
			dst = binary.LittleEndian.AppendUint64(dst, acc)
			spill := n + w - 64
			if spill > 0 {
				acc = v >> (w - spill)
			} else {
				acc = 0
			}
			n = spill
		} else {
			n += w
		}
	}
	for ; n > 0; n -= 8 {
		dst = append(dst, byte(acc))
		acc >>= 8
	}
	return dst
}

// thrift writes the compact protocol, only what the footer needs.
type thrift struct {
	buf  []byte
	last []int16 // the last field id of each open struct
}

func (t *thrift) reset() { t.buf, t.last = t.buf[:0], append(t.last[:0], 0) }

func (t *thrift) field(id int16, typ byte) {
	top := &t.last[len(t.last)-1]
	if d := id - *top; d > 0 && d <= 15 {
		t.buf = append(t.buf, byte(d)<<4|typ)
	} else {
		t.buf = append(t.buf, typ)
		t.buf = binary.AppendVarint(t.buf, int64(id))
	}
	*top = id
}

func (t *thrift) i32(id int16, v int32) { t.field(id, 5); t.buf = binary.AppendVarint(t.buf, int64(v)) }
func (t *thrift) i64(id int16, v int64) { t.field(id, 6); t.buf = binary.AppendVarint(t.buf, v) }
func (t *thrift) binary(id int16, s string) {
	t.field(id, 8)
	t.elemBinary(s)
}
func (t *thrift) elemBinary(s string) {
	t.buf = binary.AppendUvarint(t.buf, uint64(len(s)))
	t.buf = append(t.buf, s...)
}
func (t *thrift) elemI32(v int32) { t.buf = binary.AppendVarint(t.buf, int64(v)) }
func (t *thrift) listBegin(id int16, elem byte, n int) {
	t.field(id, 9)
	if n < 15 {
		t.buf = append(t.buf, byte(n)<<4|elem)
		return
	}
	t.buf = append(t.buf, 0xf0|elem)
	t.buf = binary.AppendUvarint(t.buf, uint64(n))
}
func (t *thrift) beginStruct(id int16) { t.field(id, 12); t.last = append(t.last, 0) }
func (t *thrift) endStruct()           { t.stop(); t.last = t.last[:len(t.last)-1] }
func (t *thrift) elemStructBegin()     { t.last = append(t.last, 0) }
func (t *thrift) elemStructEnd()       { t.endStruct() }
func (t *thrift) stop()                { t.buf = append(t.buf, 0) }
