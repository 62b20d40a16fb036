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
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/ratelog"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/plugins/common/envelope"
	"github.com/flowline/flowline/plugins/common/udpin"
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
			FlushInterval: core.Duration(100 * time.Millisecond),
			ReplayWindow:  core.Duration(time.Minute),
		}
	})
}

// Replica is the input and its configuration.
type Replica struct {
	Address       string        `toml:"address"`
	Sockets       int           `toml:"sockets"`
	ReadBuffer    core.Size     `toml:"read_buffer"`
	BatchPackets  int           `toml:"batch_packets"`
	FlushInterval core.Duration `toml:"flush_interval"`
	// Allow lists the senders (prefixes or addresses) whose datagrams are
	// read; empty reads every sender.
	Allow []string `toml:"allow"`
	// Secret, when set, is the key envelopes must be authenticated with
	// (shared with outputs.tee and processors.templates share_secret).
	Secret string `toml:"secret"`
	// ReplayWindow is how far an authenticated envelope's time may be from
	// this clock.
	ReplayWindow core.Duration `toml:"replay_window"`

	allow   udpin.Prefixes
	signers sync.Pool // *envelope.Signer, one per reading goroutine at a time
	udp     udpin.Listener
	log     *slog.Logger
	bad     *ratelog.Limiter
	m       struct {
		enveloped, plain, templates, probes, junk, unauthenticated prometheus.Counter
	}
}

var (
	_ core.Input        = (*Replica)(nil)
	_ core.Listener     = (*Replica)(nil)
	_ core.Initializer  = (*Replica)(nil)
	_ core.DropReporter = (*Replica)(nil)
	_ core.FlowCounter  = (*Replica)(nil)
	_ core.Validator    = (*Replica)(nil)
)

// Validate checks the allow list and the secret (also for `flowline config
// check`).
func (r *Replica) Validate() error {
	var err error
	if r.allow, err = udpin.ParsePrefixes("allow", r.Allow); err != nil {
		return err
	}
	if err := envelope.CheckSecret(r.Secret); err != nil {
		return err
	}
	if r.ReplayWindow == 0 {
		r.ReplayWindow = core.Duration(time.Minute)
	}
	if r.ReplayWindow < core.Duration(time.Second) {
		return fmt.Errorf("replay_window = %s: at least 1s", r.ReplayWindow)
	}
	return nil
}

// Init validates the configuration and registers the metrics.
func (r *Replica) Init(env *core.Env) error {
	if err := r.Validate(); err != nil {
		return err
	}
	r.log = env.Logger
	r.udp = udpin.Listener{
		Allow:         r.allow,
		Address:       r.Address,
		Sockets:       r.Sockets,
		ReadBuffer:    int(r.ReadBuffer),
		BatchPackets:  r.BatchPackets,
		FlushInterval: time.Duration(r.FlushInterval),
	}
	r.udp.Input = env.Name
	r.udp.Log = r.log
	r.bad = ratelog.New(r.log, 10*time.Second)
	if err := r.udp.Validate(); err != nil {
		return err
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "replica", Name: name, Help: help})
	}
	r.m.enveloped = c("enveloped_packets_total", "Export datagrams received in a tee envelope.")
	r.m.plain = c("plain_packets_total", "Plain NetFlow/IPFIX datagrams received (transparent tee, balancer, exporter).")
	r.m.templates = c("shared_templates_total", "Templates received from the tee or from peers.")
	r.m.probes = c("probes_answered_total", "Liveness probes from a tee answered.")
	r.m.junk = c("junk_total", "Datagrams that were neither an envelope nor NetFlow/IPFIX (skipped).")
	r.m.unauthenticated = c("unauthenticated_total", "Envelopes (packets, templates, probes) without a valid tag or outside replay_window, dropped.")
	for _, m := range []prometheus.Collector{r.m.enveloped, r.m.plain, r.m.templates, r.m.probes, r.m.junk, r.m.unauthenticated} {
		if err := env.Metrics.Register(m); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	if err := r.udp.Register(env.Metrics); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	if r.Secret == "" {
		r.log.Warn("no secret: this input trusts its network; anyone who reaches it can send envelopes that claim any exporter's address and replace its templates (set secret = \"${FLOWLINE_REPLICA_SECRET}\" here and in the tee)",
			"address", r.Address, "allow", r.Allow)
	} else {
		r.signers.New = func() any { return envelope.NewSigner(r.Secret) }
	}
	return nil
}

// authentic checks an envelope's tag and time when a secret is set.
func (r *Replica) authentic(data []byte, from netip.AddrPort, now int64) bool {
	if r.Secret == "" {
		return true
	}
	s := r.signers.Get().(*envelope.Signer)
	err := s.Verify(data, now, time.Duration(r.ReplayWindow))
	r.signers.Put(s)
	if err != nil {
		r.m.unauthenticated.Inc()
		r.bad.Log(slog.LevelWarn, "unauthenticated envelope dropped", "from", from.String(), "err", err)
		return false
	}
	return true
}

// Listen opens the sockets. Start calls it; tests call it first to learn the
// bound address when the configured port is 0.
func (r *Replica) Listen(ctx context.Context) error { return r.udp.Listen(ctx) }

// Addr is the address the first socket is bound to (after Listen).
func (r *Replica) Addr() net.Addr { return r.udp.Addr() }

// Start reads every socket until ctx ends or Stop closes them.
func (r *Replica) Start(ctx context.Context, emit func(*core.Batch) bool) error {
	// Sockets are read by goroutines of their own: they share the reply buffer.
	var mu sync.Mutex
	reply := make([]byte, 0, 512)
	replySigner := envelope.NewSigner(r.Secret) // used under mu
	return r.udp.Run(ctx, emit, func(rd *udpin.Reader, pkt *core.Packet) bool {
		data, from := pkt.Data, pkt.Exporter
		switch {
		case envelope.IsEnvelope(data):
			h, payload, err := envelope.Parse(data)
			if err != nil {
				r.m.junk.Inc()
				r.bad.Log(slog.LevelWarn, "bad envelope skipped", "from", from.String(), "err", err)
				return false
			}
			if !r.authentic(data, from, pkt.Received) {
				return false
			}
			switch h.Type {
			case envelope.TypeProbe:
				mu.Lock()
				reply = envelope.AppendHeader(reply[:0], envelope.TypeProbeReply, netip.AddrPort{}, pkt.Received)
				reply = append(reply, payload[:min(len(payload), 256)]...)
				if r.Secret != "" {
					reply = replySigner.Seal(reply)
				}
				_, _ = rd.Conn.WriteToUDPAddrPort(reply, from)
				mu.Unlock()
				r.m.probes.Inc()
				return false
			case envelope.TypeProbeReply:
				return false
			case envelope.TypeTemplates:
				rd.Batch = r.templates(payload, from, time.Unix(0, pkt.Received), rd.Batch, rd.Emit)
				return false
			}
			if !isNetFlow(payload) {
				r.m.junk.Inc()
				r.bad.Log(slog.LevelWarn, "envelope without a NetFlow datagram skipped", "from", from.String())
				return false
			}
			r.m.enveloped.Inc()
			pkt.Data, pkt.Exporter = payload, h.Exporter
			if h.Received != 0 {
				pkt.Received = h.Received
			}
			return true
		case isNetFlow(data):
			r.m.plain.Inc()
			return true
		}
		r.m.junk.Inc()
		r.bad.Log(slog.LevelWarn, "datagram that is neither an envelope nor NetFlow skipped", "from", from.String(), "bytes", len(data))
		return false
	})
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
			b = core.NewPacketBatch()
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
			Input:    r.udp.Input,
		})
	}
	if len(b.Packets) > 0 {
		emit(b) // templates unlock queued data: hand them on at once
		b = core.NewPacketBatch()
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

// CountFlows counts the flows a batch of datagrams announces (v5 and v9
// headers) for the engine's loss line.
func (r *Replica) CountFlows(b *core.Batch) uint64 { return udpin.CountFlows(b) }

// Dropped reports the kernel's drops on the input's sockets (the engine's
// loss log reads it).
func (r *Replica) Dropped() []core.Drop { return r.udp.Dropped() }

// Stop closes the sockets; the read loops emit what they hold and return.
func (r *Replica) Stop(context.Context) error {
	r.udp.Stop()
	return nil
}
