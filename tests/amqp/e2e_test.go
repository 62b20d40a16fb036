package amqp

import (
	"testing"
	"time"

	"github.com/flowline/flowline/internal/testamqp"
	"github.com/flowline/flowline/internal/testbin"
)

// twoTier runs flowgen -> edge -> RabbitMQ -> central (duckdb) with the
// edge's output keys, calling during (if set) while flowgen sends, and
// checks that the stored sums equal flowgen's totals exactly.
func twoTier(t *testing.T, output, refresh string, flows uint64, during func(br testamqp.Broker, n names, edge, central *tier) *tier) {
	br := testamqp.Find(t)
	n := newNames()
	cport, eport, udp := testbin.FreeTCPPort(t), testbin.FreeTCPPort(t), testbin.FreeUDPPort(t)
	central := start(t, t.TempDir(), centralConfig(br, n, cport, ""), cport)
	edge := start(t, t.TempDir(), edgeConfig(br, n, udp, eport, refresh, output), eport)
	done := make(chan struct{})
	if during != nil {
		go func() {
			defer close(done)
			if c := during(br, n, edge, central); c != nil {
				central = c
			}
		}()
	} else {
		close(done)
	}
	tot := send(t, flowgenConfig(udp, flows, 100_000, 7))
	<-done
	time.Sleep(300 * time.Millisecond) // the last datagrams reach the socket
	edge.Stop()                        // flushes the aggregate and publishes it
	waitConsumed(t, br, n, central, 3*time.Minute)
	central.Stop()
	got := totals(t, central)
	if got.packets != tot.FlowPackets || got.bytes != tot.FlowBytes {
		t.Fatalf("central stored %d packets, %d bytes in %d rows; flowgen sent %d packets, %d bytes in %d flows\nedge:\n%s\ncentral:\n%s",
			got.packets, got.bytes, got.rows, tot.FlowPackets, tot.FlowBytes, tot.Flows, edge.Log(), central.Log())
	}
	t.Logf("%d flows -> %d rows, %d packets, %d bytes: exact", tot.Flows, got.rows, got.packets, got.bytes)
}

// JSON (pmacct's objects, 64 KiB multi-value messages) and Flowline's
// binary batches carry 1,000,000 flows exactly.
func TestTwoTierExact(t *testing.T) {
	for _, c := range []struct{ name, output string }{
		{"json", `  format = "json"
  multi_values = "64KiB"`},
		{"flowline", `  format = "flowline"`},
	} {
		t.Run(c.name, func(t *testing.T) { twoTier(t, c.output, "2s", 1_000_000, nil) })
	}
}
