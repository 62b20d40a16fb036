package templates

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/ratelog"
	"github.com/flowline/flowline/plugins/common/envelope"
	"github.com/flowline/flowline/plugins/common/netflow"
)

// sharer sends templates as template envelopes (plugins/common/envelope)
// to the share_to addresses over one UDP socket. Templates that reach a
// collector through its inputs.replica are re-encoded as template datagrams
// of their exporter and decoded like any other; a collector learning a
// template it already has (the echo of its own share) does not share again,
// so sharing settles after one round.
type sharer struct {
	names  []string         // as configured
	to     []netip.AddrPort // resolved; invalid until the name resolves
	conn   *net.UDPConn
	secret string // "" for none
	errLog *ratelog.Limiter
	shared prometheus.Counter
	errors prometheus.Counter
}

func newSharer(addrs []string, secret string, env *core.Env) (*sharer, error) {
	if err := envelope.CheckSecret(secret); err != nil {
		return nil, fmt.Errorf("share_%w", err)
	}
	s := &sharer{
		shared: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "templates", Name: "shared_total",
			Help: "Templates sent to share_to (one per destination)."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "templates", Name: "share_errors_total",
			Help: "Template datagrams that could not be sent to share_to."}),
	}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return nil, fmt.Errorf("share_to %q: want host:port", a)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, fmt.Errorf("share_to %q: bad port: %w", a, err)
		}
		s.names = append(s.names, a)
		s.to = append(s.to, netip.AddrPort{})
	}
	s.secret = secret
	conn, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, fmt.Errorf("share_to: open socket: %w", err)
	}
	s.conn = conn
	s.errLog = ratelog.New(env.Logger, 10*time.Second)
	for _, c := range []prometheus.Collector{s.shared, s.errors} {
		if err := env.Metrics.Register(c); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return s, nil
}

// send encodes sets and sends them to every destination; errors are counted
// and logged, never returned: sharing is best effort, the periodic resend
// repairs a lost datagram.
func (s *sharer) send(sets []netflow.TemplateSet) {
	if len(sets) == 0 || s.conn == nil {
		return
	}
	dgs, err := envelope.EncodeTemplates(sets)
	if err != nil {
		s.errors.Inc()
		s.errLog.Log(slog.LevelWarn, "cannot share templates", "err", err)
		return
	}
	if s.secret != "" {
		// Sharing is rare and may run from two goroutines: a signer each time.
		signer := envelope.NewSigner(s.secret)
		for i, dg := range dgs {
			dgs[i] = signer.Seal(dg)
		}
	}
	for i, to := range s.to {
		if !to.IsValid() {
			// Resolved when first needed: a peer's name may not resolve
			// before its container starts.
			ua, err := net.ResolveUDPAddr("udp", s.names[i])
			if err != nil {
				s.errors.Inc()
				s.errLog.Log(slog.LevelWarn, "cannot share templates: share_to does not resolve", "to", s.names[i], "err", err)
				continue
			}
			ap := ua.AddrPort()
			to = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			s.to[i] = to
		}
		ok := true
		for _, dg := range dgs {
			if _, err := s.conn.WriteToUDPAddrPort(dg, to); err != nil {
				s.errors.Inc()
				s.errLog.Log(slog.LevelWarn, "cannot share templates", "to", to.String(), "err", err)
				ok = false
			}
		}
		if ok {
			s.shared.Add(float64(len(sets)))
		}
	}
}

func (s *sharer) close() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}
