package flowgen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Run sends the traffic cfg describes to cfg.Target over UDP and returns
// the exact totals of the datagrams whose write succeeded.
//
// It stops when cfg.Flows flows are sent, cfg.Duration has elapsed or ctx
// ends; then it sends the templates still owed to source ids whose data went
// first (TemplateDelay), unless ctx has ended. A failed write ends the run:
// Run returns the totals so far with the error. The end of ctx is not an
// error.
func Run(ctx context.Context, cfg Config) (Totals, error) {
	var tot Totals
	g, err := NewGenerator(cfg)
	if err != nil {
		return tot, err
	}
	cfg = g.Config()
	if cfg.Target == "" {
		return tot, cfgErr("Target", "missing")
	}
	dst, err := resolve(cfg.Target)
	if err != nil {
		return tot, cfgErr("Target", "%v", err)
	}
	network := "udp4"
	if dst.Addr().Is6() {
		network = "udp6"
	}
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if len(cfg.Exporters) == 0 {
		c, err := net.ListenUDP(network, nil)
		if err != nil {
			return tot, fmt.Errorf("flowgen: open socket: %w", err)
		}
		conns = append(conns, c)
	}
	for _, e := range cfg.Exporters {
		a := netip.MustParseAddr(e).Unmap() // checked by NewGenerator
		c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
		if err != nil {
			return tot, fmt.Errorf("flowgen: bind exporter %s: %w", e, err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		_ = c.SetWriteBuffer(4 << 20) // best effort
	}

	start := time.Now()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	done := ctx.Done()
	// Token bucket in flows: tokens may go negative by one packet, which
	// the pacer then sleeps off; idle time refills at most burst tokens.
	var (
		rate   = float64(cfg.Rate)
		burst  = max(float64(cfg.FlowsPerPacket), rate/200) // about 5 ms of flows
		tokens = burst
		last   = start
		timer  *time.Timer
	)
	if cfg.Rate > 0 {
		timer = time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
	}
	stopped := false
	for {
		if !stopped {
			select {
			case <-done:
				return tot, nil
			default:
			}
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				g.Drain()
				stopped = true
			}
		}
		pkt, kind, flows := g.Next()
		if kind == PacketNone {
			return tot, nil
		}
		if cfg.Rate > 0 && flows > 0 {
			now := time.Now()
			tokens = min(burst, tokens+rate*now.Sub(last).Seconds())
			last = now
			tokens -= float64(flows)
			if tokens < 0 {
				timer.Reset(time.Duration(-tokens / rate * float64(time.Second)))
				select {
				case <-done:
					return tot, nil
				case <-timer.C:
				}
			}
		}
		info := g.Last()
		if _, err := conns[info.Exporter].WriteToUDPAddrPort(pkt, dst); err != nil {
			return tot, fmt.Errorf("flowgen: send to %s: %w", dst, err)
		}
		tot.Add(info)
	}
}

func resolve(target string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(target); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	ua, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
