package aggregate

import (
	"math/bits"
	"unsafe"
)

// keyIndex finds a key's slot in a Table: open addressing with linear
// probing over 8-byte slots (the key's hash in the upper half, its index in
// the table plus one in the lower half, 0 for empty), the keys themselves
// staying in the table's slice. A Go map of 104-byte keys keeps them inline
// in its groups: with hundreds of thousands of keys (10,000 hosts, a 1m
// bin) every probe walked cold memory and hashed twice on an insert; here a
// probe reads 8 bytes and compares a key only when its hash matches
// (BenchmarkAggregateManyKeys).
type keyIndex struct {
	slots []uint64
	mask  uint64
	n     int
}

// keyWords is the key as 64-bit words, for hashing.
const keyWords = int(unsafe.Sizeof(key{}) / 8)

// hash mixes the key's bytes (its padding is always zero: keys start from
// the zero value).
func (k *key) hash() uint64 {
	w := (*[keyWords]uint64)(unsafe.Pointer(k))
	h := uint64(0x243F6A8885A308D3)
	for _, x := range w {
		hi, lo := bits.Mul64(h^x, 0x9E3779B97F4A7C15)
		h = hi ^ lo
	}
	return h
}

// find returns the key's index in keys, or -1 and the slot where it goes.
func (ix *keyIndex) find(k *key, h uint64, keys []key) (int32, uint64) {
	tag := h >> 32
	i := h & ix.mask
	for {
		s := ix.slots[i]
		if s == 0 {
			return -1, i
		}
		if s>>32 == tag && keys[uint32(s)-1] == *k {
			return int32(uint32(s) - 1), i
		}
		i = (i + 1) & ix.mask
	}
}

// insert puts index idx of a key with hash h into slot i (from find), and
// grows the index when it is half full.
func (ix *keyIndex) insert(i uint64, h uint64, idx int32, keys []key) {
	ix.slots[i] = h>>32<<32 | uint64(uint32(idx)+1)
	ix.n++
	if 2*ix.n > len(ix.slots) {
		ix.grow(keys)
	}
}

func (ix *keyIndex) init(size int) {
	ix.slots = make([]uint64, size)
	ix.mask = uint64(size - 1)
	ix.n = 0
}

// grow doubles the slots and re-places every key.
func (ix *keyIndex) grow(keys []key) {
	ix.init(2 * len(ix.slots))
	for idx := range keys {
		h := keys[idx].hash()
		i := h & ix.mask
		for ix.slots[i] != 0 {
			i = (i + 1) & ix.mask
		}
		ix.slots[i] = h>>32<<32 | uint64(uint32(idx)+1)
		ix.n++
	}
}

// reset empties the index, keeping its size.
func (ix *keyIndex) reset() {
	clear(ix.slots)
	ix.n = 0
}
