// Package netflow is inputs.netflow: it receives NetFlow v5/v9 and IPFIX
// datagrams over UDP (IPv4 and IPv6) and emits them as packet batches. It
// decodes nothing; processors.templates does.
//
// Each socket is read by its own goroutine straight into the arena of a
// pooled batch, so the read path allocates nothing per datagram. A batch is
// emitted when it is full or flush_interval after its first datagram. The
// input never waits for a slow pipeline: the engine drops and counts a batch
// the pipeline cannot take.
package netflow

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/config"
	"github.com/flowline/flowline/core/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Inputs, "netflow", sample, func() any {
		return &NetFlow{
			Address:       "0.0.0.0:9995",
			Sockets:       1,
			ReadBuffer:    32 << 20,
			BatchPackets:  256,
			FlushInterval: config.Duration(100 * time.Millisecond),
		}
	})
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// NetFlow is the input and its configuration.
type NetFlow struct {
	Address       string          `toml:"address"`
	Sockets       int             `toml:"sockets"`
	ReadBuffer    config.Size     `toml:"read_buffer"`
	BatchPackets  int             `toml:"batch_packets"`
	FlushInterval config.Duration `toml:"flush_interval"`

	name  string
	log   *slog.Logger
	mu    sync.Mutex
	conns []*net.UDPConn
}

var (
	_ core.Input       = (*NetFlow)(nil)
	_ core.Initializer = (*NetFlow)(nil)
)

// Init validates the configuration.
func (n *NetFlow) Init(env *core.Env) error {
	n.name = env.Name
	n.log = env.Logger
	if _, err := net.ResolveUDPAddr("udp", n.Address); err != nil {
		return fmt.Errorf("address %q: %w", n.Address, err)
	}
	if n.Sockets < 1 || n.Sockets > 64 {
		return fmt.Errorf("sockets = %d: want 1 to 64", n.Sockets)
	}
	if n.BatchPackets < 1 {
		return fmt.Errorf("batch_packets = %d: want at least 1", n.BatchPackets)
	}
	if n.FlushInterval <= 0 {
		return fmt.Errorf("flush_interval must be positive")
	}
	return nil
}

// Listen opens the sockets. Start calls it; tests call it first to learn the
// bound address when the configured port is 0.
func (n *NetFlow) Listen(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.conns) > 0 {
		return nil
	}
	lc := net.ListenConfig{}
	addr := n.Address
	if n.Sockets > 1 {
		lc.Control = reusePort
	}
	for i := 0; i < n.Sockets; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			n.closeLocked()
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		conn := pc.(*net.UDPConn)
		n.setReadBuffer(conn)
		n.conns = append(n.conns, conn)
		// With port 0 the other sockets must share the port the first got.
		addr = conn.LocalAddr().String()
	}
	return nil
}

// Addr is the address the first socket is bound to (after Listen).
func (n *NetFlow) Addr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.conns) == 0 {
		return nil
	}
	return n.conns[0].LocalAddr()
}

func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// setReadBuffer asks for read_buffer bytes of socket buffer; as root it
// overrides net.core.rmem_max, otherwise the kernel caps it and we say so.
func (n *NetFlow) setReadBuffer(conn *net.UDPConn) {
	want := int(n.ReadBuffer)
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
	if got/2 < want && n.log != nil {
		n.log.Warn("socket read buffer smaller than read_buffer; raise net.core.rmem_max or run as root",
			"want", want, "got", got/2)
	}
}

// Start reads every socket until ctx ends or Stop closes them.
func (n *NetFlow) Start(ctx context.Context, emit func(*core.Batch) bool) error {
	if err := n.Listen(ctx); err != nil {
		return err
	}
	n.mu.Lock()
	conns := append([]*net.UDPConn(nil), n.conns...)
	n.mu.Unlock()
	if n.log != nil {
		n.log.Info("listening", "address", conns[0].LocalAddr().String(), "sockets", len(conns))
	}
	stop := context.AfterFunc(ctx, func() { _ = n.Stop(context.Background()) })
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for _, c := range conns {
		wg.Add(1)
		go func(c *net.UDPConn) {
			defer wg.Done()
			if err := n.read(c, emit); err != nil {
				errs <- err
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// read is one socket's receive loop.
func (n *NetFlow) read(c *net.UDPConn, emit func(*core.Batch) bool) error {
	name := n.name
	flush := time.Duration(n.FlushInterval)
	var b *core.Batch
	send := func() {
		if b != nil && len(b.Packets) > 0 {
			emit(b)
			b = nil
		}
		_ = c.SetReadDeadline(time.Time{})
	}
	defer func() {
		if b != nil {
			if len(b.Packets) > 0 {
				emit(b)
			} else {
				b.Release()
			}
		}
	}()
	for {
		if b == nil {
			b = core.NewBatch()
		}
		if cap(b.Arena)-len(b.Arena) < maxDatagram {
			send()
			continue
		}
		off := len(b.Arena)
		buf := b.Arena[off : off+maxDatagram]
		size, from, err := c.ReadFromUDPAddrPort(buf)
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
		now := time.Now()
		if len(b.Packets) == 0 {
			_ = c.SetReadDeadline(now.Add(flush))
		}
		b.Arena = b.Arena[:off+size]
		b.Packets = append(b.Packets, core.Packet{
			Data:     b.Arena[off : off+size : off+size],
			Exporter: netipUnmap(from),
			Received: now.UnixNano(),
			Input:    name,
		})
		if len(b.Packets) >= n.BatchPackets {
			send()
		}
	}
}

// Stop closes the sockets; the read loops emit what they hold and return.
func (n *NetFlow) Stop(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closeLocked()
	return nil
}

func (n *NetFlow) closeLocked() {
	for _, c := range n.conns {
		_ = c.Close()
	}
	n.conns = nil
}
