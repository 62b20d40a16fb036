// Package replica is inputs.replica, the collector side of the replicator
// (outputs.tee) and of template sharing (processors.templates share_to):
// pmacct's templates port and tee receiver in one UDP socket.
//
// It accepts, on one address:
//   - packet envelopes from the tee: the datagram inside is emitted as
//     received from the exporter address, port and time the envelope carries;
//   - template envelopes from the tee or from peers: the templates are
//     re-encoded as NetFlow v9 / IPFIX template datagrams and emitted as
//     coming from their exporter, so that processors.templates learns them
//     exactly as if the exporter had sent them (and the tee, on a
//     replicator, sends them to every collector);
//   - probe envelopes from the tee: answered at once, so the tee knows the
//     collector is alive;
//   - plain NetFlow v5/v9/IPFIX datagrams (a transparent tee, a load
//     balancer, an exporter): emitted as received from the datagram's source.
//
// Anything else is counted and skipped. Like inputs.netflow, each socket is
// read straight into the arena of a pooled batch, and the input never waits
// for a slow pipeline.
package replica

import (
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/config"
	"github.com/flowline/flowline/core/ratelog"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/plugins/common/envelope"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Inputs, "replica", sample, func() any {
		return &Replica{
			Address:       "0.0.0.0:20001",
			Sockets:       1,
			ReadBuffer:    32 << 20,
			BatchPackets:  256,
			FlushInterval: config.Duration(100 * time.Millisecond),
		}
	})
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// soReusePort is SO_REUSEPORT on Linux, which package syscall does not name.
const soReusePort = 0xf

// Replica is the input and its configuration.
type Replica struct {
	Address       string          `toml:"address"`
	Sockets       int             `toml:"sockets"`
	ReadBuffer    config.Size     `toml:"read_buffer"`
	BatchPackets  int             `toml:"batch_packets"`
	FlushInterval config.Duration `toml:"flush_interval"`

	name  string
	log   *slog.Logger
	bad   *ratelog.Limiter
	mu    sync.Mutex
	conns []*net.UDPConn
	m     struct {
		enveloped, plain, templates, probes, junk prometheus.Counter
	}
}

var (
	_ core.Input       = (*Replica)(nil)
	_ core.Initializer = (*Replica)(nil)
)

// Init validates the configuration and registers the metrics.
func (r *Replica) Init(env *core.Env) error {
	r.log = slog.Default()
	if env != nil {
		r.name = env.Name
		if env.Logger != nil {
			r.log = env.Logger
		}
	}
	r.bad = ratelog.New(r.log, 10*time.Second)
	if _, err := net.ResolveUDPAddr("udp", r.Address); err != nil {
		return fmt.Errorf("address %q: %w", r.Address, err)
	}
	if r.Sockets < 1 || r.Sockets > 64 {
		return fmt.Errorf("sockets = %d: want 1 to 64", r.Sockets)
	}
	if r.BatchPackets < 1 {
		return fmt.Errorf("batch_packets = %d: want at least 1", r.BatchPackets)
	}
	if r.FlushInterval <= 0 {
		return errors.New("flush_interval must be positive")
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "replica", Name: name, Help: help})
	}
	r.m.enveloped = c("enveloped_packets_total", "Export datagrams received in a tee envelope.")
	r.m.plain = c("plain_packets_total", "Plain NetFlow/IPFIX datagrams received (transparent tee, balancer, exporter).")
	r.m.templates = c("shared_templates_total", "Templates received from the tee or from peers.")
	r.m.probes = c("probes_answered_total", "Liveness probes from a tee answered.")
	r.m.junk = c("junk_total", "Datagrams that were neither an envelope nor NetFlow/IPFIX (skipped).")
	if env != nil && env.Metrics != nil {
		for _, m := range []prometheus.Collector{r.m.enveloped, r.m.plain, r.m.templates, r.m.probes, r.m.junk} {
			if err := env.Metrics.Register(m); err != nil {
				return fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return nil
}

// Listen opens the sockets. Start calls it; tests call it first to learn the
// bound address when the configured port is 0.
func (r *Replica) Listen(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.conns) > 0 {
		return nil
	}
	lc := net.ListenConfig{}
	addr := r.Address
	if r.Sockets > 1 {
		lc.Control = reusePort
	}
	for i := 0; i < r.Sockets; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			r.closeLocked()
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		conn := pc.(*net.UDPConn)
		r.setReadBuffer(conn)
		r.conns = append(r.conns, conn)
		addr = conn.LocalAddr().String()
	}
	return nil
}

// Addr is the address the first socket is bound to (after Listen).
func (r *Replica) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.conns) == 0 {
		return nil
	}
	return r.conns[0].LocalAddr()
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

func (r *Replica) setReadBuffer(conn *net.UDPConn) {
	want := int(r.ReadBuffer)
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
	if got/2 < want {
		r.log.Warn("socket read buffer smaller than read_buffer; raise net.core.rmem_max or run as root", "want", want, "got", got/2)
	}
}

// Start reads every socket until ctx ends or Stop closes them.
func (r *Replica) Start(ctx context.Context, emit func(*core.Batch) bool) error {
	if err := r.Listen(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	conns := append([]*net.UDPConn(nil), r.conns...)
	r.mu.Unlock()
	r.log.Info("listening", "address", conns[0].LocalAddr().String(), "sockets", len(conns))
	stop := context.AfterFunc(ctx, func() { _ = r.Stop(context.Background()) })
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for _, c := range conns {
		wg.Add(1)
		go func(c *net.UDPConn) {
			defer wg.Done()
			if err := r.read(c, emit); err != nil {
				errs <- err
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// read is one socket's receive loop.
func (r *Replica) read(c *net.UDPConn, emit func(*core.Batch) bool) error {
	flush := time.Duration(r.FlushInterval)
	reply := make([]byte, 0, 512)
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
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		data := buf[:size:size]
		pkt := core.Packet{Data: data, Exporter: from, Received: now.UnixNano(), Input: r.name}
		switch {
		case envelope.IsEnvelope(data):
			h, payload, err := envelope.Parse(data)
			if err != nil {
				r.m.junk.Inc()
				r.bad.Log(slog.LevelWarn, "bad envelope skipped", "from", from.String(), "err", err)
				continue
			}
			switch h.Type {
			case envelope.TypeProbe:
				reply = envelope.AppendHeader(reply[:0], envelope.TypeProbeReply, netip.AddrPort{}, now.UnixNano())
				reply = append(reply, payload[:min(len(payload), 256)]...)
				_, _ = c.WriteToUDPAddrPort(reply, from)
				r.m.probes.Inc()
				continue
			case envelope.TypeProbeReply:
				continue
			case envelope.TypeTemplates:
				b = r.templates(payload, from, now, b, emit)
				continue
			}
			if !isNetFlow(payload) {
				r.m.junk.Inc()
				r.bad.Log(slog.LevelWarn, "envelope without a NetFlow datagram skipped", "from", from.String())
				continue
			}
			r.m.enveloped.Inc()
			pkt.Data, pkt.Exporter = payload, h.Exporter
			if h.Received != 0 {
				pkt.Received = h.Received
			}
		case isNetFlow(data):
			r.m.plain.Inc()
		default:
			r.m.junk.Inc()
			r.bad.Log(slog.LevelWarn, "datagram that is neither an envelope nor NetFlow skipped", "from", from.String(), "bytes", size)
			continue
		}
		if len(b.Packets) == 0 {
			_ = c.SetReadDeadline(now.Add(flush))
		}
		b.Arena = b.Arena[:off+size]
		b.Packets = append(b.Packets, pkt)
		if len(b.Packets) >= r.BatchPackets {
			send()
		}
	}
}

// templates decodes a template envelope and appends one template datagram
// per (exporter, version, domain) to the batch, emitting it first when it
// lacks room. The envelope's bytes in the arena are overwritten.
func (r *Replica) templates(payload []byte, from netip.AddrPort, now time.Time, b *core.Batch, emit func(*core.Batch) bool) *core.Batch {
	sets, err := envelope.DecodeTemplates(payload)
	if err != nil {
		r.m.junk.Inc()
		r.bad.Log(slog.LevelWarn, "bad template envelope skipped", "from", from.String(), "err", err)
		return b
	}
	r.m.templates.Add(float64(len(sets)))
	for _, g := range envelope.Group(sets) {
		need := 20
		for _, ts := range g {
			need += 8 + 8*len(ts.Fields)
		}
		if cap(b.Arena)-len(b.Arena) < need+8 {
			if len(b.Packets) > 0 {
				emit(b)
			} else {
				b.Release()
			}
			b = core.NewBatch()
		}
		off := len(b.Arena)
		b.Arena = envelope.AppendTemplatePacket(b.Arena, g, now)
		if len(b.Arena) == off {
			continue
		}
		b.Packets = append(b.Packets, core.Packet{
			Data:     b.Arena[off:len(b.Arena):len(b.Arena)],
			Exporter: netip.AddrPortFrom(g[0].Exporter, 0),
			Received: now.UnixNano(),
			Input:    r.name,
		})
	}
	if len(b.Packets) > 0 {
		emit(b) // templates unlock queued data: hand them on at once
		b = core.NewBatch()
	}
	return b
}

// isNetFlow reports whether data starts like a NetFlow v5/v9 or IPFIX datagram.
func isNetFlow(data []byte) bool {
	if len(data) < 4 {
		return false
	}
	switch binary.BigEndian.Uint16(data) {
	case 5, 9, 10:
		return true
	}
	return false
}

// Stop closes the sockets; the read loops emit what they hold and return.
func (r *Replica) Stop(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeLocked()
	return nil
}

func (r *Replica) closeLocked() {
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.conns = nil
}
