package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chunkOf is n items "tag/i" so that every item says where it came from.
func chunkOf(tag int64, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("%d/%d", tag, i))
	}
	return out
}

func newTest(dir string, maxItems int, maxBytes int64) *Spool[[]byte] {
	s := New(Config[[]byte]{Dir: dir, Magic: "FLTEST01", Ext: ".test", MaxItems: maxItems, MaxBytes: maxBytes, Codec: Bytes{}})
	s.SetNextSeq(1)
	return s
}

// drain takes everything out, one Peek at a time, and returns the items in
// the order they came.
func drain(t *testing.T, s *Spool[[]byte], maxItems int) []string {
	t.Helper()
	var got []string
	for i := 0; !s.Empty(); i++ {
		if i > 10_000 {
			t.Fatal("spool does not drain")
		}
		g, err := s.Peek(maxItems)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range g {
			if len(c.Items) != c.N {
				t.Fatalf("chunk %d: %d items loaded, N %d", c.Seq, len(c.Items), c.N)
			}
			for _, it := range c.Items {
				got = append(got, string(it))
			}
		}
		s.Commit(g)
	}
	return got
}

func want(tags ...int64) []string {
	var out []string
	for _, tag := range tags {
		for _, it := range chunkOf(tag, 10) {
			out = append(out, string(it))
		}
	}
	return out
}

// TestOrderAcrossMemoryAndDisk: memory first, then files; once a chunk went
// to disk, later chunks follow it there even when memory has room again,
// and everything comes out in arrival order.
func TestOrderAcrossMemoryAndDisk(t *testing.T) {
	dir := t.TempDir()
	s := newTest(dir, 25, 1<<20)
	if err := s.Open(0); err != nil {
		t.Fatal(err)
	}
	for tag := int64(1); tag <= 5; tag++ {
		if n, err := s.Push(chunkOf(tag, 10), tag); n != 0 || err != nil {
			t.Fatalf("push %d: dropped %d: %v", tag, n, err)
		}
	}
	mem, disk, chunks := s.Sizes()
	if mem != 20 || disk == 0 || chunks != 5 {
		t.Fatalf("memory %d items, spool %d bytes, %d chunks; want 20 in memory, 3 chunks on disk", mem, disk, chunks)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.test")); len(files) != 3 {
		t.Fatalf("%d spool files, want 3", len(files))
	}
	g, err := s.Peek(0)
	if err != nil || len(g) != 1 || g[0].Seq != 1 {
		t.Fatalf("Peek(0): %d chunks, %v", len(g), err)
	}
	s.Commit(g)
	// Memory has room now, but the spool is not empty: to disk.
	s.Push(chunkOf(6, 10), 6)
	if mem, _, _ := s.Sizes(); mem != 10 {
		t.Fatalf("%d items in memory, want 10 (chunk 6 must follow the spooled ones)", mem)
	}
	if got := drain(t, s, 100); strings.Join(got, " ") != strings.Join(want(2, 3, 4, 5, 6), " ") {
		t.Fatalf("order: %v", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("%d files left after everything was committed", len(ents))
	}
	// Back to memory once drained.
	s.Push(chunkOf(7, 10), 7)
	if mem, disk, _ := s.Sizes(); mem != 10 || disk != 0 {
		t.Fatalf("after draining: memory %d, spool %d bytes", mem, disk)
	}
}

// TestPeekGroupsByTag: consecutive chunks of one tag come together, up to
// maxItems, across memory and disk.
func TestPeekGroupsByTag(t *testing.T) {
	s := newTest(t.TempDir(), 15, 1<<20)
	s.Open(0)
	for _, tag := range []int64{1, 1, 1, 2, 3, 3} {
		s.Push(chunkOf(tag, 10), tag)
	}
	var sizes []int
	for !s.Empty() {
		g, err := s.Peek(25)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range g {
			n += c.N
			if c.Tag != g[0].Tag {
				t.Fatalf("group mixes tags %d and %d", g[0].Tag, c.Tag)
			}
		}
		sizes = append(sizes, n)
		s.Commit(g)
	}
	if fmt.Sprint(sizes) != "[20 10 10 20]" {
		t.Fatalf("group sizes %v, want [20 10 10 20]", sizes)
	}
}

// TestRestartRecovery: Spill at close writes memory to disk; a new spool on
// the directory (a new process) delivers everything in order, numbers new
// chunks after the old ones, and DropThrough skips what a ledger says
// was delivered.
func TestRestartRecovery(t *testing.T) {
	dir := t.TempDir()
	s := newTest(dir, 25, 1<<20)
	s.Open(0)
	for tag := int64(1); tag <= 5; tag++ {
		s.Push(chunkOf(tag, 10), tag)
	}
	// A temporary file a crash left behind is cleaned up, not read.
	os.WriteFile(filepath.Join(dir, "00000000000000000099.test.tmp"), []byte("half"), 0o644)
	if lost, err := s.Spill(); lost != 0 || err != nil {
		t.Fatalf("spill lost %d: %v", lost, err)
	}
	if mem, _, chunks := s.Sizes(); mem != 0 || chunks != 5 {
		t.Fatalf("after spill: %d in memory, %d chunks", mem, chunks)
	}

	r := New(Config[[]byte]{Dir: dir, Magic: "FLTEST01", Ext: ".test", MaxItems: 25, MaxBytes: 1 << 20, Codec: Bytes{}})
	if err := r.Open(0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000099.test.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("temporary file not removed")
	}
	if _, _, chunks := r.Sizes(); chunks != 5 {
		t.Fatalf("%d chunks found after restart, want 5", chunks)
	}
	r.DropThrough(1)
	r.Push(chunkOf(6, 10), 6)
	if got := drain(t, r, 0); strings.Join(got, " ") != strings.Join(want(2, 3, 4, 5, 6), " ") {
		t.Fatalf("after restart: %v", got)
	}
}

// TestNumbersAboveOldFiles: a new process numbers above files it finds,
// even with a clock that went backwards.
func TestNumbersAboveOldFiles(t *testing.T) {
	dir := t.TempDir()
	s := newTest(dir, 1, 1<<20)
	s.SetNextSeq(1 << 62)
	s.Open(0)
	s.Push(chunkOf(1, 1), 1)
	s.Push(chunkOf(2, 1), 2)
	s.Spill()
	r := newTest(dir, 1, 1<<20)
	r.Open(0)
	r.Push(chunkOf(3, 1), 3)
	var seqs []uint64
	for !r.Empty() {
		g, err := r.Peek(0)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, g[0].Seq)
		r.Commit(g)
	}
	if len(seqs) != 3 || seqs[2] <= seqs[1] || seqs[1] <= seqs[0] {
		t.Fatalf("sequence numbers %v", seqs)
	}
}

// TestFullIsReported: what fits neither memory nor spool is returned as
// dropped with a reason, and the spool stays within MaxBytes.
func TestFullIsReported(t *testing.T) {
	s := newTest("", 10, 0)
	s.Open(0)
	if n, _ := s.Push(chunkOf(1, 10), 1); n != 0 {
		t.Fatal("first chunk dropped")
	}
	if n, err := s.Push(chunkOf(2, 5), 2); n != 5 || err == nil {
		t.Fatalf("dropped %d (%v), want 5 with a reason", n, err)
	}
	// A chunk larger than memory is taken when memory is empty.
	big := newTest("", 10, 0)
	if n, _ := big.Push(chunkOf(1, 50), 1); n != 0 {
		t.Fatal("an oversized chunk was refused by an empty memory")
	}

	d := newTest(t.TempDir(), 10, 300)
	d.Open(0)
	d.Push(chunkOf(1, 10), 1)
	dropped := 0
	for tag := int64(2); tag < 20; tag++ {
		n, _ := d.Push(chunkOf(tag, 10), tag)
		dropped += n
	}
	if dropped == 0 {
		t.Fatal("a 300-byte spool took 180 items")
	}
	if _, sz, _ := d.Sizes(); sz > 300 {
		t.Fatalf("spool holds %d bytes, more than MaxBytes", sz)
	}
	kept := len(drain(t, d, 0))
	if kept+dropped != 190 {
		t.Fatalf("%d kept + %d dropped, want 190", kept, dropped)
	}
}

// TestCorruptFileReportedAndSkipped: a flipped byte, a truncated file, an
// empty file and a wrong magic are each reported by Peek with the file's
// name, set aside as *.bad, and the chunks after them still flow.
func TestCorruptFileReportedAndSkipped(t *testing.T) {
	damage := map[string]func([]byte) []byte{
		"flipped byte": func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b },
		"truncated":    func(b []byte) []byte { return b[:len(b)-7] },
		"empty":        func(b []byte) []byte { return nil },
		"wrong magic":  func(b []byte) []byte { b[0] = 'X'; return b },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := newTest(dir, 1, 1<<20)
			s.Open(0)
			for tag := int64(1); tag <= 3; tag++ {
				s.Push(chunkOf(tag, 10), tag)
			}
			s.Spill()
			files, _ := filepath.Glob(filepath.Join(dir, "*.test"))
			data, _ := os.ReadFile(files[1])
			os.WriteFile(files[1], f(data), 0o644)

			r := newTest(dir, 1, 1<<20)
			r.Open(0)
			var got []string
			bad := 0
			for i := 0; !r.Empty() && i < 10; i++ {
				g, err := r.Peek(0)
				if err != nil {
					if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), files[1]) {
						t.Fatalf("error %v does not name the corrupt file", err)
					}
					bad++
					r.SetAside(g[0])
					continue
				}
				for _, it := range g[0].Items {
					got = append(got, string(it))
				}
				r.Commit(g)
			}
			if bad != 1 || strings.Join(got, " ") != strings.Join(want(1, 3), " ") {
				t.Fatalf("%d reported, delivered %v", bad, got)
			}
			if b, _ := filepath.Glob(filepath.Join(dir, "*.bad")); len(b) != 1 {
				t.Fatal("corrupt file not kept as *.bad")
			}
		})
	}
}

// panicky is a codec whose decoder panics on what it reads.
type panicky struct{ Bytes }

func (panicky) Decode([]byte, int) ([][]byte, error) { panic("index out of range") }

// TestPanickingCodecIsAnError: a decoder that panics makes a corrupt-file
// error with the header's item count, not a crash.
func TestPanickingCodecIsAnError(t *testing.T) {
	dir := t.TempDir()
	s := New(Config[[]byte]{Dir: dir, Magic: "FLTEST01", MaxItems: 1, MaxBytes: 1 << 20, Codec: panicky{}})
	s.Open(0)
	s.Push(chunkOf(1, 3), 1)
	s.Push(chunkOf(2, 3), 2) // on disk
	g, _ := s.Peek(0)
	s.Commit(g)
	g, err := s.Peek(0)
	if !errors.Is(err, ErrCorrupt) || len(g) != 1 || g[0].N != 3 {
		t.Fatalf("panicking decoder: %v, %d chunks", err, len(g))
	}
}

// FuzzReadFile: whatever bytes a spool file holds, Peek returns items or an
// error, never panics.
func FuzzReadFile(f *testing.F) {
	dir := f.TempDir()
	s := newTest(dir, 0, 1<<20)
	s.Open(0)
	s.Push(chunkOf(1, 3), 1)
	s.Push(chunkOf(2, 3), 2)
	s.Spill()
	files, _ := filepath.Glob(filepath.Join(dir, "*.test"))
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "00000000000000000001.test"), data, 0o644)
		r := newTest(d, 10, 1<<20)
		if err := r.Open(0); err != nil {
			t.Fatal(err)
		}
		g, err := r.Peek(100)
		if err != nil {
			r.SetAside(g[0])
		} else if len(g) != 1 || len(g[0].Items) != g[0].N {
			t.Fatalf("decoded %d chunks", len(g))
		}
	})
}

// TestPeekReadableSkipsCorrupt: PeekReadable reports an unreadable file
// with its item count, sets it aside and returns the next chunk.
func TestPeekReadableSkipsCorrupt(t *testing.T) {
	dir := t.TempDir()
	s := newTest(dir, 0, 1<<20)
	s.Open(0)
	s.Push(chunkOf(1, 10), 1)
	s.Push(chunkOf(2, 10), 2)
	s.Spill()
	files, _ := filepath.Glob(filepath.Join(dir, "*.test"))
	data, _ := os.ReadFile(files[0])
	data[len(data)-1] ^= 1 // the checksum
	os.WriteFile(files[0], data, 0o644)
	r := newTest(dir, 0, 1<<20)
	r.Open(0)
	lost := 0
	g := r.PeekReadable(0, func(n int, err error) { lost += n })
	if lost != 10 || len(g) != 1 || g[0].Tag != 2 {
		t.Fatalf("lost %d, got %d chunks", lost, len(g))
	}
}

func TestDirFor(t *testing.T) {
	for _, c := range []struct{ data, conf, name, want string }{
		{"/d", "", "out/a b", "/d/influxdb-out_a_b"},
		{"/d", "sp", "x", "/d/sp"},
		{"/d", "/abs", "x", "/abs"},
		{"", "", "x", ""},
	} {
		if got := DirFor(c.data, c.conf, "influxdb", c.name); got != c.want {
			t.Errorf("DirFor(%q, %q, %q) = %q, want %q", c.data, c.conf, c.name, got, c.want)
		}
	}
}

// TestMemBytes: the memory estimate follows what is held in memory (not
// what went to disk) and returns to zero once it is committed.
func TestMemBytes(t *testing.T) {
	s := newTest(t.TempDir(), 10, 1<<20)
	if _, err := s.Push(chunkOf(1, 8), 1); err != nil {
		t.Fatal(err)
	}
	inMem := s.MemBytes()
	if inMem <= 0 {
		t.Fatalf("8 items in memory: MemBytes %d", inMem)
	}
	if _, err := s.Push(chunkOf(2, 8), 2); err != nil { // memory full: to disk
		t.Fatal(err)
	}
	if s.MemBytes() != inMem {
		t.Fatalf("a chunk on disk changed MemBytes: %d, was %d", s.MemBytes(), inMem)
	}
	drain(t, s, 100)
	if s.MemBytes() != 0 {
		t.Fatalf("after delivery MemBytes = %d", s.MemBytes())
	}
}
