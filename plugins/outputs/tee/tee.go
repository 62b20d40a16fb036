// Package tee is outputs.tee, the replicator: it forwards export datagrams
// (packets, never decoded records) to pools of collectors.
//
// Every template and options template set, and every options data set (the
// sampling rates), goes to every live receiver of a pool: a datagram that
// also holds flow data goes whole to the receiver the balance rule picks and
// as a copy with only those sets to the others. Flow data goes by the
// pool's balance rule: "rr" (round robin over live receivers), "hash-exporter"
// (an exporter always lands on the same receiver while it lives) or "all".
//
// Datagrams travel in an envelope (plugins/common/envelope) that carries the
// exporter's address, port and receive time, or, with transparent = true,
// as raw IPv4 datagrams with the exporter's own source address and port
// (needs root or CAP_NET_RAW).
//
// Liveness: every probe_interval the tee sends each receiver a probe
// envelope on a connected UDP socket; inputs.replica answers it. A receiver
// that has not answered for probe_timeout, or whose host answers with ICMP
// port unreachable (seen at once as ECONNREFUSED on the connected socket),
// leaves the rotation and its share goes to the others; its first answer
// puts it back, and the tee first sends it every template (and sampling
// option) it has seen, so that it decodes at once.
//
// The hot path (a data datagram to one receiver) walks set headers only and
// allocates nothing.
package tee

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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
	registry.Register(registry.Outputs, "tee", sample, func() any {
		return &Tee{
			Liveness:      "probe",
			ProbeInterval: core.Duration(500 * time.Millisecond),
			ProbeTimeout:  core.Duration(2 * time.Second),
			WriteBuffer:   8 << 20,
			TemplateTTL:   core.Duration(24 * time.Hour),
		}
	})
}

// Balance rules.
const (
	BalanceRR   = "rr"
	BalanceHash = "hash-exporter"
	BalanceAll  = "all"
)

// Tee is the output and its configuration.
type Tee struct {
	// Transparent sends raw IPv4 or IPv6 datagrams with the exporter's
	// source address instead of envelopes.
	Transparent bool `toml:"transparent"`
	// Liveness is "probe" (probes answered by inputs.replica, plus ICMP port
	// unreachable) or "none" (every receiver is always in the rotation).
	Liveness      string        `toml:"liveness"`
	ProbeInterval core.Duration `toml:"probe_interval"`
	ProbeTimeout  core.Duration `toml:"probe_timeout"`
	// WriteBuffer is the socket send buffer of each receiver's socket.
	WriteBuffer core.Size `toml:"write_buffer"`
	// TemplateTTL is how long a cached template (or sampling option) the
	// exporter has not sent again is kept for a returning receiver: the
	// templates' own lifetime (processors.templates template_ttl); "0s"
	// keeps them forever.
	TemplateTTL core.Duration `toml:"template_ttl"`
	// Secret, when set, authenticates every envelope (packets, templates,
	// probes) with an HMAC tag that inputs.replica checks; probe answers
	// must carry it too. Give it as "${FLOWLINE_REPLICA_SECRET}".
	Secret string `toml:"secret"`
	Pools  []Pool `toml:"pool"`

	log    *slog.Logger
	errLog *ratelog.Limiter
	pools  []*pool
	recvs  []*receiver
	raw    int // raw IPv4 socket (transparent), -1 when none
	raw6   int // raw IPv6 socket (transparent), -1 when none

	m struct {
		notNetFlow, noReceiver, filtered prometheus.Counter
		cachedExporters, cachedSets      prometheus.Gauge
	}
	lastSweep int64 // Unix nanos of the last cache expiry

	// Hot-path scratch, owned by the Write goroutine.
	signer *envelope.Signer // nil without a secret
	wire   []byte           // the datagram as sent to the picked receiver
	extra  []byte           // the template (and options) part, for the others
	cache  map[cacheKey]*exporterCache

	stop   context.CancelFunc
	probes sync.WaitGroup
}

// Pool is one group of receivers (pmacct's receivers.lst line).
type Pool struct {
	ID        int      `toml:"id"`
	Receivers []string `toml:"receivers"`
	Balance   string   `toml:"balance"`
	// Exporters, when set, limits the pool to exporters in these prefixes
	// or addresses.
	Exporters []string `toml:"exporters"`
}

type pool struct {
	id        int
	balance   string
	receivers []*receiver
	filter    udpin.Prefixes
	next      uint64
}

type receiver struct {
	addr   netip.AddrPort
	name   string // as configured: the metrics' receiver label
	pool   int
	conn   *net.UDPConn
	sa     syscall.SockaddrInet4
	sa6    syscall.SockaddrInet6
	up     atomic.Bool
	resync atomic.Bool
	last   atomic.Int64 // last probe reply, Unix nanos

	packets, templates, bytes, errors prometheus.Counter
	upGauge                           prometheus.Gauge
}

var (
	_ core.Output         = (*Tee)(nil)
	_ core.PacketConsumer = (*Tee)(nil)
	_ core.Initializer    = (*Tee)(nil)
)

// ConsumesPackets tells the engine to hand the tee packets, not records.
func (t *Tee) ConsumesPackets() bool { return true }

// Init validates the configuration, registers the per-receiver counters
// and, in transparent mode, opens the raw socket.
func (t *Tee) Init(env *core.Env) error {
	t.log = env.Logger
	t.errLog = ratelog.New(t.log, 10*time.Second)
	t.raw, t.raw6 = -1, -1
	switch t.Liveness {
	case "probe", "none":
	default:
		return fmt.Errorf("liveness = %q: want \"probe\" or \"none\"", t.Liveness)
	}
	if t.Liveness == "probe" && (t.ProbeInterval <= 0 || t.ProbeTimeout < t.ProbeInterval) {
		return fmt.Errorf("probe_interval must be positive and probe_timeout at least probe_interval")
	}
	if len(t.Pools) == 0 {
		return errors.New("no receivers: add an [[outputs.tee.pool]] with receivers")
	}
	if err := envelope.CheckSecret(t.Secret); err != nil {
		return err
	}
	if t.Secret != "" {
		t.signer = envelope.NewSigner(t.Secret)
	}
	reg := env.Metrics
	labels := []string{"pool", "receiver"}
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "tee", Name: name, Help: help}, labels)
	}
	pkts := vec("packets_sent_total", "Datagrams sent to a receiver (data and templates).")
	tmpls := vec("templates_sent_total", "Datagrams carrying templates or sampling options sent to a receiver.")
	byts := vec("bytes_sent_total", "Bytes sent to a receiver, envelope included.")
	errs := vec("send_errors_total", "Sends to a receiver that failed.")
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flowline", Subsystem: "tee", Name: "receiver_up",
		Help: "1 while a receiver is in the rotation."}, labels)
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "tee", Name: name, Help: help})
	}
	t.m.notNetFlow = c("not_netflow_total", "Datagrams that were not NetFlow v5/v9 or IPFIX (dropped).")
	t.m.noReceiver = c("no_receiver_total", "Datagrams dropped because no receiver of their pool was live.")
	t.m.filtered = c("unmatched_total", "Datagrams whose exporter matched no pool (dropped).")
	t.m.cachedExporters = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowline", Subsystem: "tee", Name: "cached_exporters",
		Help: "Exporter template spaces whose templates the tee keeps for returning receivers."})
	t.m.cachedSets = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowline", Subsystem: "tee", Name: "cached_sets",
		Help: "Templates and sampling option sets the tee keeps for returning receivers."})
	if t.TemplateTTL < 0 {
		return errors.New("template_ttl must not be negative")
	}
	for _, col := range []prometheus.Collector{pkts, tmpls, byts, errs, up, t.m.notNetFlow, t.m.noReceiver, t.m.filtered, t.m.cachedExporters, t.m.cachedSets} {
		if err := reg.Register(col); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	seenID := map[int]bool{}
	for i, pc := range t.Pools {
		if seenID[pc.ID] {
			return fmt.Errorf("pool %d: duplicate id %d", i+1, pc.ID)
		}
		seenID[pc.ID] = true
		p := &pool{id: pc.ID, balance: pc.Balance}
		switch pc.Balance {
		case "":
			p.balance = BalanceRR
		case BalanceRR, BalanceHash, BalanceAll:
		default:
			return fmt.Errorf("pool %d: balance = %q: want %q, %q or %q", pc.ID, pc.Balance, BalanceRR, BalanceHash, BalanceAll)
		}
		if len(pc.Receivers) == 0 {
			return fmt.Errorf("pool %d: no receivers", pc.ID)
		}
		filter, err := udpin.ParsePrefixes("exporters", pc.Exporters)
		if err != nil {
			return fmt.Errorf("pool %d: %w", pc.ID, err)
		}
		p.filter = filter
		for _, rs := range pc.Receivers {
			host, port, err := net.SplitHostPort(rs)
			if err != nil || host == "" {
				return fmt.Errorf("pool %d: receiver %q: want host:port", pc.ID, rs)
			}
			if _, err := strconv.ParseUint(port, 10, 16); err != nil {
				return fmt.Errorf("pool %d: receiver %q: bad port: %w", pc.ID, rs, err)
			}
			r := &receiver{name: rs, pool: pc.ID}
			lv := []string{strconv.Itoa(pc.ID), r.name}
			r.packets, r.templates, r.bytes, r.errors = pkts.WithLabelValues(lv...), tmpls.WithLabelValues(lv...), byts.WithLabelValues(lv...), errs.WithLabelValues(lv...)
			r.upGauge = up.WithLabelValues(lv...)
			p.receivers = append(p.receivers, r)
			t.recvs = append(t.recvs, r)
		}
		t.pools = append(t.pools, p)
	}
	if t.Transparent {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("transparent = true needs a raw socket, which needs root or CAP_NET_RAW (setcap cap_net_raw+ep flowline): %w", err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_HDRINCL, 1); err != nil {
			_ = syscall.Close(fd)
			return fmt.Errorf("transparent: set IP_HDRINCL: %w", err)
		}
		if t.WriteBuffer > 0 {
			_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, int(t.WriteBuffer))
		}
		t.raw = fd
		// IPv6: a raw IPPROTO_RAW socket takes the whole IPv6 header
		// (IPV6_HDRINCL is implied). A host without IPv6 has none; a v6
		// receiver then fails at Connect.
		if fd6, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_RAW); err == nil {
			if t.WriteBuffer > 0 {
				_ = syscall.SetsockoptInt(fd6, syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, int(t.WriteBuffer))
			}
			t.raw6 = fd6
		}
	}
	t.wire = make([]byte, 0, 65536+envelope.MaxHeaderLen)
	t.extra = make([]byte, 0, 65536+envelope.MaxHeaderLen)
	t.cache = make(map[cacheKey]*exporterCache)
	return nil
}

// Connect resolves the receivers, opens a connected UDP socket per receiver
// and starts the probes. A name that does not resolve yet (a collector
// container not started) is an error the engine retries with backoff.
func (t *Tee) Connect(ctx context.Context) error {
	if t.stop != nil {
		return nil
	}
	for _, r := range t.recvs {
		if r.conn != nil {
			continue
		}
		ua, err := net.ResolveUDPAddr("udp", r.name)
		if err != nil {
			return fmt.Errorf("pool %d: receiver %s: %w", r.pool, r.name, err)
		}
		ap := ua.AddrPort()
		r.addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if r.addr.Addr().Is4() {
			r.sa = syscall.SockaddrInet4{Addr: r.addr.Addr().As4(), Port: int(r.addr.Port())}
		} else {
			if t.Transparent && t.raw6 < 0 {
				return core.Permanent(fmt.Errorf("pool %d: receiver %s: transparent mode to an IPv6 receiver needs a raw IPv6 socket, which this host refused", r.pool, r.name))
			}
			// The raw socket takes port 0: the UDP header carries the port.
			r.sa6 = syscall.SockaddrInet6{Addr: r.addr.Addr().As16()}
		}
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r.addr))
		if err != nil {
			return fmt.Errorf("receiver %s: %w", r.name, err)
		}
		if t.WriteBuffer > 0 {
			_ = c.SetWriteBuffer(int(t.WriteBuffer))
		}
		r.conn = c
		r.last.Store(time.Now().UnixNano())
		r.up.Store(true)
		r.upGauge.Set(1)
	}
	pctx, cancel := context.WithCancel(context.Background())
	t.stop = cancel
	if t.Liveness == "probe" {
		for _, r := range t.recvs {
			t.probes.Add(1)
			go func(r *receiver) { defer t.probes.Done(); t.probe(pctx, r) }(r)
		}
	}
	return nil
}

// Close stops the probes and closes the sockets.
func (t *Tee) Close(context.Context) error {
	if t.stop != nil {
		t.stop()
	}
	for _, r := range t.recvs {
		if r.conn != nil {
			_ = r.conn.SetReadDeadline(time.Now())
		}
	}
	done := make(chan struct{})
	go func() { t.probes.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	for _, r := range t.recvs {
		if r.conn != nil {
			_ = r.conn.Close()
		}
	}
	if t.raw >= 0 {
		_ = syscall.Close(t.raw)
		t.raw = -1
	}
	if t.raw6 >= 0 {
		_ = syscall.Close(t.raw6)
		t.raw6 = -1
	}
	return nil
}

// probe sends a probe every probe_interval and reads the answers; it takes
// the receiver out of the rotation after probe_timeout without an answer or
// at once on ICMP port unreachable, and puts it back at its first answer.
func (t *Tee) probe(ctx context.Context, r *receiver) {
	buf := make([]byte, 512)
	msg := make([]byte, 0, 64)
	interval := time.Duration(t.ProbeInterval)
	timeout := time.Duration(t.ProbeTimeout)
	var signer *envelope.Signer
	if t.Secret != "" {
		signer = envelope.NewSigner(t.Secret)
	}
	for ctx.Err() == nil {
		msg = envelope.AppendHeader(msg[:0], envelope.TypeProbe, netip.AddrPort{}, time.Now().UnixNano())
		if signer != nil {
			msg = signer.Seal(msg)
		}
		if _, err := r.conn.Write(msg); err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			t.markDown(r, "port unreachable")
		}
		deadline := time.Now().Add(interval)
		_ = r.conn.SetReadDeadline(deadline)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			n, err := r.conn.Read(buf)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					t.markDown(r, "port unreachable")
					continue
				}
				if errors.Is(err, net.ErrClosed) {
					return
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					break
				}
				time.Sleep(interval / 10) // unexpected error: do not spin
				continue
			}
			h, _, err := envelope.Parse(buf[:n])
			if err != nil || h.Type != envelope.TypeProbeReply {
				continue
			}
			if signer != nil && signer.Verify(buf[:n], time.Now().UnixNano(), timeout) != nil {
				t.errLog.Log(slog.LevelWarn, "probe answer without a valid tag ignored (is the receiver's secret the same?)", "receiver", r.name)
				continue
			}
			r.last.Store(time.Now().UnixNano())
			if !r.up.Load() {
				r.resync.Store(true)
				r.up.Store(true)
				r.upGauge.Set(1)
				t.log.Info("receiver back in the rotation", "receiver", r.name)
			}
		}
		if r.up.Load() && time.Since(time.Unix(0, r.last.Load())) > timeout {
			t.markDown(r, "no answer to probes for "+timeout.String()+" (a receiver that is not inputs.replica never answers: set liveness = \"none\")")
		}
	}
}

func (t *Tee) markDown(r *receiver, why string) {
	if r.up.CompareAndSwap(true, false) {
		r.upGauge.Set(0)
		t.log.Warn("receiver out of the rotation; its share goes to the others", "receiver", r.name, "why", why)
	}
}

// Write forwards every packet of the batch. Failures are counted per
// receiver and never returned: a retried batch would duplicate flows.
func (t *Tee) Write(_ context.Context, b *core.Batch) error {
	for i := range b.Packets {
		t.forward(&b.Packets[i])
	}
	if ttl := time.Duration(t.TemplateTTL); ttl > 0 {
		now := time.Now().UnixNano()
		if now-t.lastSweep > int64(min(ttl/4, time.Minute)) {
			t.lastSweep = now
			t.expire(now, ttl)
		}
	}
	return nil
}

// forward sends one datagram to every pool that takes its exporter.
func (t *Tee) forward(p *core.Packet) {
	exp := p.Exporter.Addr().Unmap()
	var kind envelope.Kind
	var ec *exporterCache
	if envelope.HeaderLen9or10(p.Data) != 0 {
		ec = t.cache[keyOf(exp, p.Data)]
	}
	err := envelope.Walk(p.Data, func(id uint16, _ []byte, template bool) {
		switch {
		case template:
			kind |= envelope.KindTemplates
		case id >= 256 && ec != nil && ec.optTemplates[id]:
			kind |= kindOptions
		case id >= 256:
			kind |= envelope.KindData
		}
	})
	if err != nil {
		t.m.notNetFlow.Inc()
		t.errLog.Log(slog.LevelWarn, "not a NetFlow datagram; dropped", "exporter", p.Exporter.String(), "bytes", len(p.Data))
		return
	}
	if kind&(envelope.KindTemplates|kindOptions) != 0 {
		t.remember(p, exp)
	}
	matched := false
	for _, pl := range t.pools {
		if !pl.takes(exp) {
			continue
		}
		matched = true
		t.toPool(pl, p, kind)
	}
	if !matched {
		t.m.filtered.Inc()
	}
}

// kindOptions marks options data sets (sampling rates): they go to every
// receiver, like templates.
const kindOptions envelope.Kind = 1 << 7

func (pl *pool) takes(a netip.Addr) bool { return pl.filter.Admits(a) }

func (t *Tee) toPool(pl *pool, p *core.Packet, kind envelope.Kind) {
	shared := kind&(envelope.KindTemplates|kindOptions) != 0
	if pl.balance == BalanceAll || kind&envelope.KindData == 0 {
		sent := false
		for _, r := range pl.receivers {
			if r.up.Load() {
				sent = t.send(r, p, p.Data, shared) || sent
			}
		}
		if !sent {
			t.m.noReceiver.Inc()
		}
		return
	}
	// Data: to the receiver the balance rule picks; a receiver whose send
	// fails with port unreachable leaves the rotation and the next is tried.
	var picked *receiver
	for tries := 0; tries <= len(pl.receivers); tries++ {
		r := pl.pick(p.Exporter.Addr())
		if r == nil {
			break
		}
		if t.send(r, p, p.Data, shared) {
			picked = r
			break
		}
	}
	if picked == nil {
		t.m.noReceiver.Inc()
	}
	if !shared {
		return
	}
	ec := t.cache[keyOf(p.Exporter.Addr().Unmap(), p.Data)]
	part := envelope.AppendSets(t.extra[:0], p.Data, func(id uint16, template bool) bool {
		return template || (ec != nil && ec.optTemplates[id])
	})
	if len(part) == 0 {
		return
	}
	t.extra = part[:0]
	for _, r := range pl.receivers {
		if r != picked && r.up.Load() {
			t.send(r, p, part, true)
		}
	}
}

// pick chooses the receiver for a data datagram, or nil when none is live.
func (pl *pool) pick(exp netip.Addr) *receiver {
	n := len(pl.receivers)
	switch pl.balance {
	case BalanceHash:
		h := hashAddr(exp)
		if r := pl.receivers[h%uint64(n)]; r.up.Load() {
			return r
		}
		live := 0
		for _, r := range pl.receivers {
			if r.up.Load() {
				live++
			}
		}
		if live == 0 {
			return nil
		}
		k := (h >> 32) % uint64(live)
		for _, r := range pl.receivers {
			if r.up.Load() {
				if k == 0 {
					return r
				}
				k--
			}
		}
		return nil
	default:
		for i := 0; i < n; i++ {
			r := pl.receivers[pl.next%uint64(n)]
			pl.next++
			if r.up.Load() {
				return r
			}
		}
		return nil
	}
}

// hashAddr is FNV-1a over the address's 16 bytes.
func hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// send sends payload (the exporter's datagram or a part of it) to r, first
// the cached templates when r just came back. It reports whether the send
// succeeded; a port unreachable takes r out of the rotation.
func (t *Tee) send(r *receiver, p *core.Packet, payload []byte, templates bool) bool {
	if r.resync.Load() {
		r.resync.Store(false)
		t.resend(r)
	}
	if !t.sendRaw(r, p.Exporter, p.Received, payload) {
		return false
	}
	if templates {
		r.templates.Inc()
	}
	return true
}

// sendRaw sends one datagram as an envelope or, in transparent mode, as a
// raw IPv4 datagram from the exporter's address.
func (t *Tee) sendRaw(r *receiver, exp netip.AddrPort, received int64, payload []byte) bool {
	var err error
	var n int
	if t.Transparent {
		n, err = t.sendTransparent(r, exp, payload)
	} else {
		if received == 0 {
			// Cached templates resent later carry the send time (the
			// receiver checks an authenticated envelope's time).
			received = time.Now().UnixNano()
		}
		w := envelope.AppendHeader(t.wire[:0], envelope.TypePacket, exp, received)
		w = append(w, payload...)
		if t.signer != nil {
			w = t.signer.Seal(w)
		}
		t.wire = w[:0]
		n, err = r.conn.Write(w)
	}
	if err != nil {
		r.errors.Inc()
		if errors.Is(err, syscall.ECONNREFUSED) && t.Liveness == "probe" {
			t.markDown(r, "port unreachable")
		} else {
			t.errLog.Log(slog.LevelWarn, "send failed", "receiver", r.name, "err", err)
		}
		return false
	}
	r.packets.Inc()
	r.bytes.Add(float64(n))
	return true
}

// sendTransparent writes an IPv4 (or IPv6) + UDP header with the exporter
// as source in front of the payload and sends it on the raw socket. The
// exporter and the receiver must be of the same family: an IPv4 source
// cannot be written into an IPv6 header.
func (t *Tee) sendTransparent(r *receiver, exp netip.AddrPort, payload []byte) (int, error) {
	src := exp.Addr().Unmap()
	if !r.addr.Addr().Is4() {
		if src.Is4() {
			return 0, fmt.Errorf("transparent mode: IPv4 exporter %s cannot be the source of a datagram to IPv6 receiver %s", src, r.name)
		}
		return t.sendTransparent6(r, netip.AddrPortFrom(src, exp.Port()), payload)
	}
	if !src.Is4() {
		return 0, fmt.Errorf("transparent mode: IPv6 exporter %s cannot be the source of a datagram to IPv4 receiver %s", src, r.name)
	}
	total := 28 + len(payload)
	if total > 65535 {
		return 0, fmt.Errorf("datagram of %d bytes too large", len(payload))
	}
	w := t.wire[:28]
	w[0], w[1] = 0x45, 0
	w[2], w[3] = byte(total>>8), byte(total)
	w[4], w[5], w[6], w[7] = 0, 0, 0, 0 // id and fragment: the kernel fills the id
	w[8], w[9] = 64, syscall.IPPROTO_UDP
	w[10], w[11] = 0, 0 // checksum: filled by the kernel
	s4, d4 := src.As4(), r.sa.Addr
	copy(w[12:16], s4[:])
	copy(w[16:20], d4[:])
	ul := 8 + len(payload)
	w[20], w[21] = byte(exp.Port()>>8), byte(exp.Port())
	w[22], w[23] = byte(r.sa.Port>>8), byte(r.sa.Port)
	w[24], w[25] = byte(ul>>8), byte(ul)
	w[26], w[27] = 0, 0 // UDP checksum is optional over IPv4
	w = append(w, payload...)
	t.wire = w[:0]
	if err := syscall.Sendto(t.raw, w, 0, &r.sa); err != nil {
		return 0, fmt.Errorf("raw send: %w", err)
	}
	return len(w), nil
}

// sendTransparent6 writes an IPv6 + UDP header (the UDP checksum is
// mandatory over IPv6, so it is computed here) in front of the payload.
func (t *Tee) sendTransparent6(r *receiver, exp netip.AddrPort, payload []byte) (int, error) {
	ul := 8 + len(payload)
	if ul > 65535 {
		return 0, fmt.Errorf("datagram of %d bytes too large", len(payload))
	}
	w := t.wire[:48]
	w[0], w[1], w[2], w[3] = 0x60, 0, 0, 0 // version 6, no traffic class or flow label
	w[4], w[5] = byte(ul>>8), byte(ul)
	w[6], w[7] = syscall.IPPROTO_UDP, 64
	s16, d16 := exp.Addr().As16(), r.addr.Addr().As16()
	copy(w[8:24], s16[:])
	copy(w[24:40], d16[:])
	dport := r.addr.Port()
	w[40], w[41] = byte(exp.Port()>>8), byte(exp.Port())
	w[42], w[43] = byte(dport>>8), byte(dport)
	w[44], w[45] = byte(ul>>8), byte(ul)
	w[46], w[47] = 0, 0
	w = append(w, payload...)
	t.wire = w[:0]
	sum := udp6Checksum(w[8:24], w[24:40], w[40:])
	w[46], w[47] = byte(sum>>8), byte(sum)
	if err := syscall.Sendto(t.raw6, w, 0, &r.sa6); err != nil {
		return 0, fmt.Errorf("raw send: %w", err)
	}
	return len(w), nil
}

// udp6Checksum is the UDP checksum over the IPv6 pseudo-header (RFC 8200
// 8.1) and the UDP header and payload (whose checksum field is zero); a
// result of 0 is sent as 0xffff.
func udp6Checksum(src, dst, udp []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src)
	add(dst)
	n := uint32(len(udp))
	sum += n>>16 + n&0xffff + syscall.IPPROTO_UDP
	add(udp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	return c
}
