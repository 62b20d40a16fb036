package udpin

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
)

// TestReceive sends datagrams of every size class from an IPv4 and an IPv6
// sender, in bursts (so that one recvmmsg call returns several), and checks
// each arrives once, whole, with its sender.
func TestReceive(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "udp6" {
				addr = "[::1]:0"
			}
			l := &Listener{Address: addr, Sockets: 1, ReadBuffer: 8 << 20, BatchPackets: 64, FlushInterval: 20 * time.Millisecond}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := l.Listen(ctx); err != nil {
				t.Skipf("%s: %v", network, err)
			}
			var mu sync.Mutex
			var got []core.Packet
			var datas [][]byte
			done := make(chan error, 1)
			go func() {
				done <- l.Run(ctx, func(b *core.Batch) bool {
					mu.Lock()
					for _, p := range b.Packets {
						got = append(got, p)
						datas = append(datas, bytes.Clone(p.Data))
					}
					mu.Unlock()
					b.Release()
					return true
				}, nil)
			}()
			conn, err := net.Dial(network, l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sizes := []int{1, 100, 1464, 9000, 65507 - 28*btoi(network == "udp6")}
			var sent [][]byte
			for round := 0; round < 40; round++ {
				for _, n := range sizes {
					d := bytes.Repeat([]byte{byte(round), byte(n)}, n/2+1)[:n]
					if _, err := conn.Write(d); err != nil {
						t.Fatal(err)
					}
					sent = append(sent, d)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				n := len(got)
				mu.Unlock()
				if n >= len(sent) || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != len(sent) {
				t.Fatalf("received %d datagrams, sent %d", len(got), len(sent))
			}
			local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
			for i := range sent {
				if !bytes.Equal(datas[i], sent[i]) {
					t.Fatalf("datagram %d: %d bytes, want %d (content differs)", i, len(datas[i]), len(sent[i]))
				}
				if got[i].Exporter.Addr() != local.Addr().Unmap() || got[i].Exporter.Port() != local.Port() {
					t.Fatalf("datagram %d from %v, want %v", i, got[i].Exporter, local)
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
