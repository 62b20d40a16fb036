package netflow

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
)

func newInput(t *testing.T, address string, sockets int) *NetFlow {
	t.Helper()
	n := &NetFlow{Address: address, Sockets: sockets, ReadBuffer: 1 << 20, BatchPackets: 8, FlushInterval: core.Duration(20 * time.Millisecond)}
	if err := n.Init(core.NewEnv("edge", "")); err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

// receive runs the input and gathers what it emits until want packets came
// or the time is up.
func receive(t *testing.T, n *NetFlow, send func(addr net.Addr), want int) []core.Packet {
	t.Helper()
	var mu sync.Mutex
	var got []core.Packet
	var batches int
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- n.Start(ctx, func(b *core.Batch) bool {
			mu.Lock()
			defer mu.Unlock()
			batches++
			for _, p := range b.Packets {
				p.Data = bytes.Clone(p.Data)
				got = append(got, p)
			}
			b.Release()
			return true
		})
	}()
	send(n.Addr())
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Start returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return after cancel")
	}
	mu.Lock()
	defer mu.Unlock()
	if batches > want {
		t.Errorf("%d batches for %d packets", batches, want)
	}
	return got
}

func TestReceivesDatagramsWithExporter(t *testing.T) {
	for _, tc := range []struct{ listen, dial string }{
		{"127.0.0.1:0", "127.0.0.1"},
		{"[::1]:0", "::1"},
	} {
		t.Run(tc.dial, func(t *testing.T) {
			n := newInput(t, tc.listen, 1)
			var local net.Addr
			got := receive(t, n, func(addr net.Addr) {
				c, err := net.Dial("udp", addr.String())
				if err != nil {
					t.Skipf("no %s on this machine: %v", tc.dial, err)
				}
				defer c.Close()
				local = c.LocalAddr()
				for i := 0; i < 20; i++ {
					fmt.Fprintf(c, "datagram %02d", i)
				}
			}, 20)
			if len(got) != 20 {
				t.Fatalf("got %d datagrams, want 20", len(got))
			}
			for i, p := range got {
				if want := fmt.Sprintf("datagram %02d", i); string(p.Data) != want {
					t.Errorf("datagram %d = %q, want %q", i, p.Data, want)
				}
				if p.Exporter.String() != local.String() || p.Input != "edge" || p.Received == 0 {
					t.Errorf("datagram %d from %s input %q received %d; want from %s, input edge", i, p.Exporter, p.Input, p.Received, local)
				}
			}
		})
	}
}

func TestSeveralSocketsShareThePort(t *testing.T) {
	n := newInput(t, "127.0.0.1:0", 3)
	if n.udp.Open() != 3 {
		t.Fatalf("%d sockets open, want 3", n.udp.Open())
	}
	got := receive(t, n, func(addr net.Addr) {
		// Different source ports spread over the sockets.
		for i := 0; i < 30; i++ {
			c, err := net.Dial("udp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "x%d", i)
			c.Close()
		}
	}, 30)
	if len(got) != 30 {
		t.Fatalf("got %d datagrams over 3 sockets, want 30", len(got))
	}
}

func TestBadConfig(t *testing.T) {
	for _, n := range []*NetFlow{
		{Address: "nonsense", Sockets: 1, BatchPackets: 1, FlushInterval: 1},
		{Address: "127.0.0.1:0", Sockets: 0, BatchPackets: 1, FlushInterval: 1},
		{Address: "127.0.0.1:0", Sockets: 1, BatchPackets: 0, FlushInterval: 1},
	} {
		if err := n.Init(core.NewEnv("netflow", "")); err == nil {
			t.Errorf("Init(%+v) succeeded; want an error", n)
		}
	}
}
