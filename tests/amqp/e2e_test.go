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
	central := startCentral(t, t.TempDir(), centralConfig(br, n, cport, ""), cport)
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
	tot := testbin.SendFlows(t, flowgenConfig(udp, flows, 100_000, 7))
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

// The broker stopped for 15 s while flows arrive: the edge spools and
// publishes in order when the broker is back, the central reconnects; the
// totals stay exact.
func TestBrokerOutage(t *testing.T) {
	twoTier(t, `  format = "flowline"`, "2s", 1_000_000, func(br testamqp.Broker, n names, edge, central *tier) *tier {
		time.Sleep(3 * time.Second)
		br.Stop(t)
		time.Sleep(15 * time.Second)
		if v, _ := testbin.TryMetric(t, edge.metrics, "flowline_amqp_messages_spooled_total"); v == 0 {
			t.Errorf("the edge spooled nothing while the broker was away")
		}
		br.Start(t)
		return nil
	})
}

// The central killed with SIGKILL twice while it consumes, and started
// again: nothing is lost (unacked messages come again) and nothing is stored
// twice (the store skips a writer's sequences it has), so every key and bin
// is one row and the sums are exact.
func TestCentralKilled(t *testing.T) {
	br := testamqp.Find(t)
	n := newNames()
	cport, eport, udp := testbin.FreeTCPPort(t), testbin.FreeTCPPort(t), testbin.FreeUDPPort(t)
	cdir := t.TempDir()
	cconf := centralConfig(br, n, cport, "")
	central := startCentral(t, cdir, cconf, cport)
	// refresh = history: the edge emits every key and bin once, at its stop.
	edge := start(t, t.TempDir(), edgeConfig(br, n, udp, eport, "1m", `  format = "json"
  multi_values = "16KiB"`), eport)
	tot := testbin.SendFlows(t, flowgenConfig(udp, 1_000_000, 100_000, 8))
	time.Sleep(300 * time.Millisecond)
	stopped := make(chan struct{})
	go func() { defer close(stopped); edge.Stop() }()
	kills := 0
	for kills < 2 {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			acked, _ := testbin.TryMetric(t, central.metrics, "flowline_amqp_messages_acked_total")
			if acked >= 300 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the central acked nothing\n%s", central.Log())
			}
			time.Sleep(10 * time.Millisecond)
		}
		central.Kill()
		kills++
		central = startCentral(t, cdir, cconf, cport)
	}
	<-stopped
	waitConsumed(t, br, n, central, 3*time.Minute)
	dups, _ := testbin.TryMetric(t, central.metrics, "flowline_duckdb_duplicate_batches_total")
	central.Stop()
	got := totals(t, central)
	if got.packets != tot.FlowPackets || got.bytes != tot.FlowBytes {
		t.Fatalf("central stored %d packets, %d bytes; flowgen sent %d, %d\n%s", got.packets, got.bytes, tot.FlowPackets, tot.FlowBytes, central.Log())
	}
	if got.rows != got.keys {
		t.Fatalf("%d rows for %d keys and bins: something was stored twice", got.rows, got.keys)
	}
	t.Logf("killed twice; %d rows = %d keys and bins, sums exact; %v redelivered batches skipped after the last restart", got.rows, got.keys, dups)
}
