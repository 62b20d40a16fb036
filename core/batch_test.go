package core

import "testing"

// TestBatchPools checks what the memory budget charges for each kind of
// batch: a record batch carries no arena (its records are its cost), a
// packet batch an arena for its datagrams, and each goes back to its own
// pool on its last Release.
func TestBatchPools(t *testing.T) {
	before := QueuedBytes()
	r := NewBatch()
	if cap(r.Arena) != 0 {
		t.Fatalf("a new record batch holds a %d-byte arena", cap(r.Arena))
	}
	r.AppendRecord().Packets = 1
	r.Charge()
	if got, want := QueuedBytes()-before, int64(cap(r.Records))*recordSize+int64(cap(r.Packets))*packetSize; got != want {
		t.Fatalf("record batch charged %d bytes, want %d (its records)", got, want)
	}
	r.Release()
	if QueuedBytes() != before {
		t.Fatalf("queued bytes %d after the release, want %d", QueuedBytes(), before)
	}

	p := NewPacketBatch()
	if cap(p.Arena) != DefaultArenaSize || len(p.Records) != 0 {
		t.Fatalf("packet batch: arena %d bytes, %d records", cap(p.Arena), len(p.Records))
	}
	if 256*1500 > DefaultArenaSize {
		t.Fatalf("the arena (%d bytes) does not hold 256 full-size datagrams", DefaultArenaSize)
	}
	p.Arena = append(p.Arena, make([]byte, 1000)...)
	p.Packets = append(p.Packets, Packet{Data: p.Arena[:1000]})
	p.Release()
	// The pools may hand back any batch; whatever they give must be empty
	// and of the kind asked for.
	for range 100 {
		r, p := NewBatch(), NewPacketBatch()
		if r.packetBatch || !p.packetBatch || len(r.Records)+len(r.Packets)+len(r.Arena) != 0 || len(p.Packets)+len(p.Records)+len(p.Arena) != 0 {
			t.Fatalf("pooled batches not empty or of the wrong kind: %+v %+v", r, p)
		}
		r.Release()
		p.Release()
	}
}
