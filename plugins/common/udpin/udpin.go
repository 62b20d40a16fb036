// Package udpin is the UDP receive path that inputs.netflow and
// inputs.replica share: one or more sockets on one address (SO_REUSEPORT),
// a large socket buffer, and one goroutine per socket reading datagrams
// straight into the arena of a pooled batch, so that the read path allocates
// nothing per datagram. A batch is handed on when it is full or
// FlushInterval after its first datagram.
package udpin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/ratelog"
)

// MaxDatagram is the largest UDP payload.
const MaxDatagram = 65535

// soReusePort is SO_REUSEPORT on Linux, which package syscall does not name.
const soReusePort = 0xf

// Listener is the socket side of a UDP input. Set the exported fields, call
// Validate in the input's Init and Run in its Start.
type Listener struct {
	Address       string
	Sockets       int
	ReadBuffer    int
	BatchPackets  int
	FlushInterval time.Duration
	// Allow, when not empty, lists the senders (by source address) whose
	// datagrams are read; others are dropped before anything looks at
	// them and counted in Denied.
	Allow Prefixes
	// Input names the packets (Packet.Input).
	Input string
	Log   *slog.Logger

	denied    prometheus.Counter
	deniedN   atomic.Uint64
	deniedLog *ratelog.Limiter
	// inodes of the open sockets, to find their kernel drop counters.
	inodes map[uint64]bool
	// kernelBase is what closed sockets had dropped, so the total grows.
	kernelBase atomic.Uint64

	mu    sync.Mutex
	conns []*net.UDPConn
}

// Validate checks the settings.
func (l *Listener) Validate() error {
	if _, err := net.ResolveUDPAddr("udp", l.Address); err != nil {
		return fmt.Errorf("address %q: %w", l.Address, err)
	}
	if l.Sockets < 1 || l.Sockets > 64 {
		return fmt.Errorf("sockets = %d: want 1 to 64", l.Sockets)
	}
	if l.BatchPackets < 1 {
		return fmt.Errorf("batch_packets = %d: want at least 1", l.BatchPackets)
	}
	if l.FlushInterval <= 0 {
		return errors.New("flush_interval must be positive")
	}
	return nil
}

// Prefixes is a list of address prefixes that admits addresses by source
// (an allow list, a pool's exporters). An empty list admits every address.
type Prefixes []netip.Prefix

// Admits reports whether a is in one of the prefixes, or the list is empty.
func (ps Prefixes) Admits(a netip.Addr) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParsePrefixes reads the list of config key: prefixes ("192.0.2.0/24",
// "2001:db8::/32") or single addresses; IPv4-mapped ones become IPv4.
func ParsePrefixes(key string, list []string) (Prefixes, error) {
	var out Prefixes
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%s: %q is neither an address nor a prefix (192.0.2.0/24, 2001:db8::/32)", key, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Register registers the listener's metrics (datagrams denied by Allow)
// and prepares its log; inputs call it from Init.
func (l *Listener) Register(reg prometheus.Registerer) error {
	l.denied = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "input", Name: "denied_packets_total",
		Help: "Datagrams from senders not in the input's allow list, dropped unread."})
	if l.Log != nil {
		l.deniedLog = ratelog.New(l.Log, 10*time.Second)
	}
	kernel := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "input", Name: "kernel_drops_total",
		Help: "Datagrams the kernel dropped because the input's socket buffer was full (the drops column of /proc/net/udp)."},
		func() float64 { return float64(l.KernelDrops()) })
	for _, c := range []prometheus.Collector{l.denied, kernel} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Denied is the number of datagrams dropped because of Allow.
func (l *Listener) Denied() uint64 {
	return l.deniedN.Load()
}

// Dropped reports the kernel's drops on the input's sockets for the
// engine's loss log (denied senders are refused, not lost).
func (l *Listener) Dropped() []core.Drop {
	return []core.Drop{{Why: "kernel socket buffer full", Unit: "packets", N: l.KernelDrops()}}
}

// KernelDrops is the number of datagrams the kernel dropped on the input's
// sockets since they were opened (their socket buffers were full), read
// from /proc/net/udp and /proc/net/udp6.
func (l *Listener) KernelDrops() uint64 {
	l.mu.Lock()
	inodes := l.inodes
	l.mu.Unlock()
	n := l.kernelBase.Load()
	if len(inodes) == 0 {
		return n
	}
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		n += kernelDrops(f, inodes)
	}
	return n
}

// kernelDrops sums the drops column of the rows of a /proc/net/udp file
// whose inode is in inodes.
func kernelDrops(file string, inodes map[uint64]bool) uint64 {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	var n uint64
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
		if len(f) < 13 {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil || !inodes[ino] {
			continue
		}
		if d, err := strconv.ParseUint(f[len(f)-1], 10, 64); err == nil {
			n += d
		}
	}
	return n
}

// inode is the socket's inode number (0 when unknown).
func inode(c *net.UDPConn) uint64 {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var st syscall.Stat_t
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), &st) }); err != nil || serr != nil {
		return 0
	}
	return st.Ino
}

// Listen opens the sockets. Run calls it; tests call it first to learn the
// bound address when the configured port is 0.
func (l *Listener) Listen(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) > 0 {
		return nil
	}
	lc := net.ListenConfig{}
	addr := l.Address
	if l.Sockets > 1 {
		lc.Control = reusePort
	}
	for i := 0; i < l.Sockets; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			l.closeLocked()
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		conn := pc.(*net.UDPConn)
		l.setReadBuffer(conn)
		l.conns = append(l.conns, conn)
		if l.inodes == nil {
			l.inodes = map[uint64]bool{}
		}
		if ino := inode(conn); ino != 0 {
			l.inodes[ino] = true
		}
		// With port 0 the other sockets must share the port the first got.
		addr = conn.LocalAddr().String()
	}
	return nil
}

// Addr is the address the first socket is bound to (after Listen).
func (l *Listener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) == 0 {
		return nil
	}
	return l.conns[0].LocalAddr()
}

// Open is the number of sockets open (after Listen).
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
	}); err != nil {
		return err
	}
	return serr
}

// setReadBuffer asks for ReadBuffer bytes of socket buffer; as root it
// overrides net.core.rmem_max, otherwise the kernel caps it and we say so.
func (l *Listener) setReadBuffer(conn *net.UDPConn) {
	want := l.ReadBuffer
	if want <= 0 {
		return
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return
	}
	var got int
	_ = raw.Control(func(fd uintptr) {
		if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, want) != nil {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, want)
		}
		got, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	})
	// Linux reports twice the usable size.
	if got/2 < want && l.Log != nil {
		l.Log.Warn("socket read buffer smaller than read_buffer; raise net.core.rmem_max or run as root",
			"want", want, "got", got/2)
	}
}

// Reader is one socket's view for a Handler: the socket (for replies), the
// batch being filled, and the emit function.
type Reader struct {
	Conn  *net.UDPConn
	Batch *core.Batch
	Emit  func(*core.Batch) bool
}

// Handler looks at one datagram, already in pkt (Data points into the
// batch's arena, Exporter is the unmapped source, Received is now), and
// reports whether to keep it as a packet of the batch. It may change pkt
// (unwrap an envelope), or answer on r.Conn, or append packets of its own
// to r.Batch (then it returns false; it may replace r.Batch after emitting it).
type Handler func(r *Reader, pkt *core.Packet) bool

// Run reads every socket until ctx ends or Stop closes them, handing each
// datagram to handle (nil keeps every datagram) and full batches to emit.
func (l *Listener) Run(ctx context.Context, emit func(*core.Batch) bool, handle Handler) error {
	if err := l.Listen(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	conns := append([]*net.UDPConn(nil), l.conns...)
	l.mu.Unlock()
	if l.Log != nil {
		l.Log.Info("listening", "address", conns[0].LocalAddr().String(), "sockets", len(conns))
	}
	stop := context.AfterFunc(ctx, l.Stop)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for _, c := range conns {
		wg.Add(1)
		go func(c *net.UDPConn) {
			defer wg.Done()
			if err := l.read(c, emit, handle); err != nil {
				errs <- err
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// read is one socket's receive loop: datagrams come several per system
// call where the platform allows (recvmmsg) and are copied into the
// batch's arena.
func (l *Listener) read(c *net.UDPConn, emit func(*core.Batch) bool, handle Handler) error {
	r := &Reader{Conn: c, Emit: emit}
	recv, err := newReceiver(c)
	if err != nil {
		return err
	}
	send := func() {
		if r.Batch != nil && len(r.Batch.Packets) > 0 {
			emit(r.Batch)
			r.Batch = nil
		}
		_ = c.SetReadDeadline(time.Time{})
	}
	defer func() {
		if r.Batch != nil {
			if len(r.Batch.Packets) > 0 {
				emit(r.Batch)
			} else {
				r.Batch.Release()
			}
		}
	}()
	for {
		data, from, err := recv.read()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				send()
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		src := from.Addr().Unmap()
		if !l.Allow.Admits(src) {
			l.deniedN.Add(1)
			if l.denied != nil {
				l.denied.Inc()
			}
			if l.deniedLog != nil {
				l.deniedLog.Log(slog.LevelWarn, "datagram from a sender not in allow dropped", "input", l.Input, "from", src.String())
			}
			continue
		}
		if r.Batch != nil && cap(r.Batch.Arena)-len(r.Batch.Arena) < len(data) {
			send()
		}
		if r.Batch == nil {
			r.Batch = core.NewPacketBatch()
		}
		b := r.Batch
		off := len(b.Arena)
		if cap(b.Arena)-off < len(data) { // larger than an empty arena
			b.Arena = append(b.Arena, make([]byte, len(data))...)[:off]
		}
		buf := b.Arena[off : off+len(data) : off+len(data)]
		copy(buf, data)
		now := time.Now()
		pkt := core.Packet{
			Data:     buf,
			Exporter: netip.AddrPortFrom(src, from.Port()),
			Received: now.UnixNano(),
			Input:    l.Input,
		}
		if handle != nil && !handle(r, &pkt) {
			continue
		}
		if len(b.Packets) == 0 {
			_ = c.SetReadDeadline(now.Add(l.FlushInterval))
		}
		b.Arena = b.Arena[:off+len(data)]
		b.Packets = append(b.Packets, pkt)
		if len(b.Packets) >= l.BatchPackets {
			send()
		}
	}
}

// Stop closes the sockets; the read loops emit what they hold and return.
func (l *Listener) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeLocked()
}

func (l *Listener) closeLocked() {
	if len(l.inodes) > 0 {
		var n uint64
		for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
			n += kernelDrops(f, l.inodes)
		}
		l.kernelBase.Add(n)
		l.inodes = nil
	}
	for _, c := range l.conns {
		_ = c.Close()
	}
	l.conns = nil
}

// CountFlows counts the flow records that the NetFlow v5 and v9 datagrams
// of a batch announce in their headers (v9's count includes template and
// options records; IPFIX datagrams announce none and count 0).
func CountFlows(b *core.Batch) uint64 {
	var n uint64
	for i := range b.Packets {
		d := b.Packets[i].Data
		if len(d) < 4 {
			continue
		}
		if v := uint16(d[0])<<8 | uint16(d[1]); v == 5 || v == 9 {
			n += uint64(uint16(d[2])<<8 | uint16(d[3]))
		}
	}
	return n
}
