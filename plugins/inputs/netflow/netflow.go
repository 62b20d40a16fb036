// Package netflow is inputs.netflow: it receives NetFlow v5/v9 and IPFIX
// datagrams over UDP (IPv4 and IPv6) and emits them as packet batches. It
// decodes nothing; processors.templates does.
//
// The receive path (plugins/common/udpin) reads each socket from its own
// goroutine straight into the arena of a pooled batch, so it allocates
// nothing per datagram. A batch is emitted when it is full or
// flush_interval after its first datagram. The input never waits for a
// slow pipeline: the engine drops and counts a batch the pipeline cannot take.
package netflow

import (
	"context"
	_ "embed"
	"net"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/plugins/common/udpin"
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
			FlushInterval: core.Duration(100 * time.Millisecond),
		}
	})
}

// NetFlow is the input and its configuration.
type NetFlow struct {
	Address       string        `toml:"address"`
	Sockets       int           `toml:"sockets"`
	ReadBuffer    core.Size     `toml:"read_buffer"`
	BatchPackets  int           `toml:"batch_packets"`
	FlushInterval core.Duration `toml:"flush_interval"`
	// Allow lists the exporters (prefixes or addresses) whose datagrams
	// are read; empty reads every sender (pmacct's nfacctd_allow_file).
	Allow []string `toml:"allow"`

	allow udpin.Prefixes
	udp   udpin.Listener
}

var (
	_ core.Input        = (*NetFlow)(nil)
	_ core.Listener     = (*NetFlow)(nil)
	_ core.Initializer  = (*NetFlow)(nil)
	_ core.DropReporter = (*NetFlow)(nil)
	_ core.FlowCounter  = (*NetFlow)(nil)
	_ core.Validator    = (*NetFlow)(nil)
)

// Validate checks the allow list (also for `flowline config check`).
func (n *NetFlow) Validate() error {
	var err error
	n.allow, err = udpin.ParsePrefixes("allow", n.Allow)
	return err
}

// Init validates the configuration and registers the input's metrics.
func (n *NetFlow) Init(env *core.Env) error {
	if err := n.Validate(); err != nil {
		return err
	}
	n.udp = udpin.Listener{
		Allow:         n.allow,
		Address:       n.Address,
		Sockets:       n.Sockets,
		ReadBuffer:    int(n.ReadBuffer),
		BatchPackets:  n.BatchPackets,
		FlushInterval: time.Duration(n.FlushInterval),
	}
	n.udp.Input, n.udp.Log = env.Name, env.Logger
	if err := n.udp.Validate(); err != nil {
		return err
	}
	if len(n.allow) == 0 {
		env.Logger.Info("no allow list: every sender that reaches the address may inject flows and templates", "address", n.Address)
	}
	return n.udp.Register(env.Metrics)
}

// Listen opens the sockets. Start calls it; tests call it first to learn the
// bound address when the configured port is 0.
func (n *NetFlow) Listen(ctx context.Context) error { return n.udp.Listen(ctx) }

// Addr is the address the first socket is bound to (after Listen).
func (n *NetFlow) Addr() net.Addr { return n.udp.Addr() }

// Start reads every socket until ctx ends or Stop closes them; every
// datagram becomes a packet.
func (n *NetFlow) Start(ctx context.Context, emit func(*core.Batch) bool) error {
	return n.udp.Run(ctx, emit, nil)
}

// CountFlows counts the flows a batch of datagrams announces (v5 and v9
// headers) for the engine's loss line.
func (n *NetFlow) CountFlows(b *core.Batch) uint64 { return udpin.CountFlows(b) }

// Dropped reports the kernel's drops on the input's sockets (the engine's
// loss log reads it).
func (n *NetFlow) Dropped() []core.Drop { return n.udp.Dropped() }

// Stop closes the sockets; the read loops emit what they hold and return.
func (n *NetFlow) Stop(context.Context) error {
	n.udp.Stop()
	return nil
}
