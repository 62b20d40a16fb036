package cluster

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/plugins/common/envelope"
	"github.com/flowline/flowline/plugins/common/netflow"
)

// replicaSecret is the test's ${FLOWLINE_REPLICA_SECRET}.
const replicaSecret = "replica-secret-0123456789"

// TestAllowList: an inputs.netflow whose allow list holds loopback stores
// everything flowgen sends; one whose list does not (and an inputs.replica
// likewise) drops every datagram before decoding and counts it per input.
// An inputs.replica without a secret says at start that it trusts its network.
func TestAllowList(t *testing.T) {
	dir := t.TempDir()
	open, closed, replica := freeUDPPort(t), freeUDPPort(t), freeUDPPort(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfg := fmt.Sprintf(`
[agent]
  data_dir = %q
  metrics_address = %q

[[inputs.netflow]]
  alias = "open"
  address = "127.0.0.1:%d"
  allow = ["127.0.0.0/8", "::1"]

[[inputs.netflow]]
  alias = "closed"
  address = "127.0.0.1:%d"
  allow = ["192.0.2.0/24", "2001:db8::/32"]

[[inputs.replica]]
  address = "127.0.0.1:%d"
  allow = ["192.0.2.1"]

[[processors.aggregate]]
  primitives = ["peer_src_ip", "src_host", "dst_host", "src_port", "dst_port", "proto"]
  history = "1m"
  refresh = "1s"
  time = "arrival"

[[outputs.print]]
  format = "json"
  file = %q
`, filepath.Join(dir, "data"), metrics, open, closed, replica, filepath.Join(dir, "flows.jsonl"))
	p := start(t, "collector", dir, metrics, cfg)
	a := send(t, flowgenConfig(fmt.Sprintf("127.0.0.1:%d", open), 60_000, 1))
	b := send(t, flowgenConfig(fmt.Sprintf("127.0.0.1:%d", closed), 40_000, 2))
	c := send(t, flowgenConfig(fmt.Sprintf("127.0.0.1:%d", replica), 20_000, 3))
	waitMetric(t, metrics, "flowline_input_denied_packets_total", 10*time.Second, func(v float64) bool { return v >= float64(b.Packets+c.Packets) })
	for alias, want := range map[string]uint64{"open": 0, "closed": b.Packets} {
		name := fmt.Sprintf(`flowline_input_denied_packets_total{alias=%q,kind="inputs",plugin="netflow"}`, alias)
		if v := metric(t, metrics, name); v != float64(want) {
			t.Errorf("%s = %v, want %d", name, v, want)
		}
	}
	if v := metric(t, metrics, `flowline_input_denied_packets_total{alias="",kind="inputs",plugin="replica"}`); v != float64(c.Packets) {
		t.Errorf("replica denied %v, want %d", v, c.Packets)
	}
	time.Sleep(300 * time.Millisecond)
	p.Stop()
	got := sums(t, filepath.Join(dir, "flows.jsonl"))
	if got.packets != a.FlowPackets || got.bytes != a.FlowBytes {
		t.Fatalf("stored %d packets, %d bytes; the allowed input got %d packets, %d bytes\n%s", got.packets, got.bytes, a.FlowPackets, a.FlowBytes, p.Log())
	}
	if !strings.Contains(p.Log(), "no secret: this input trusts its network") {
		t.Errorf("inputs.replica without a secret did not warn:\n%s", p.Log())
	}
	if !strings.Contains(p.Log(), "datagram from a sender not in allow dropped") {
		t.Errorf("denied datagrams were not logged:\n%s", p.Log())
	}
	t.Logf("allowed: %d flows exact; denied: %d + %d datagrams (closed netflow, replica), counted", a.Flows, b.Packets, c.Packets)
}

// v5Datagram is a NetFlow v5 datagram of one flow of pkts packets.
func v5Datagram(pkts uint32, at time.Time) []byte {
	d := make([]byte, 24+48)
	binary.BigEndian.PutUint16(d[0:], 5)
	binary.BigEndian.PutUint16(d[2:], 1)
	binary.BigEndian.PutUint32(d[4:], 1000) // sysuptime ms
	binary.BigEndian.PutUint32(d[8:], uint32(at.Unix()))
	r := d[24:]
	copy(r[0:4], []byte{198, 51, 100, 1})
	copy(r[4:8], []byte{198, 51, 100, 2})
	binary.BigEndian.PutUint32(r[16:], pkts)
	binary.BigEndian.PutUint32(r[20:], pkts*100)
	binary.BigEndian.PutUint32(r[24:], 900)
	binary.BigEndian.PutUint32(r[28:], 1000)
	binary.BigEndian.PutUint16(r[32:], 1234)
	binary.BigEndian.PutUint16(r[34:], 80)
	r[38] = 6
	return d
}

// TestAuthenticatedEnvelopes: a replicator and a collector that share a
// secret pass flowgen's flows exactly (packets, templates and probes all
// tagged). Envelopes sent straight to the collector that claim another
// exporter are dropped and counted when they have no tag, a tag made with
// another secret, or a right tag but a time outside the replay window; an
// untagged template envelope and an untagged probe too. The same envelope
// tagged with the secret at the current time is stored, so the refusals
// are the tag's doing.
func TestAuthenticatedEnvelopes(t *testing.T) {
	dir := t.TempDir()
	env := []string{"FLOWLINE_REPLICA_SECRET=" + replicaSecret}
	cport := freeUDPPort(t)
	cdir := filepath.Join(dir, "collector")
	cm := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	ccfg := strings.Replace(collectorConfig(cdir, cport, cm, ""), `read_buffer = "32MiB"`, `read_buffer = "32MiB"
  allow = ["127.0.0.0/8"]
  secret = "${FLOWLINE_REPLICA_SECRET}"
  replay_window = "30s"`, 1)
	collector := start(t, "collector", cdir, cm, ccfg, env...)
	rport := freeUDPPort(t)
	rdir := filepath.Join(dir, "replicator")
	rm := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	rcfg := strings.Replace(replicatorConfig(rdir, rport, rm, []string{fmt.Sprintf("127.0.0.1:%d", cport)}, "rr", false),
		"[[outputs.tee]]", "[[outputs.tee]]\n  secret = \"${FLOWLINE_REPLICA_SECRET}\"", 1)
	replicator := start(t, "replicator", rdir, rm, rcfg, env...)
	// The tee only counts the collector up once a tagged probe answer came back.
	waitMetric(t, rm, "flowline_tee_receiver_up", 10*time.Second, func(v float64) bool { return v == 1 })
	tot := send(t, flowgenConfig(fmt.Sprintf("127.0.0.1:%d", rport), 100_000, 7))

	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", cport))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	spoofed := netip.MustParseAddrPort("10.9.9.9:2055")
	now := time.Now()
	packet := func(at time.Time, pkts uint32) []byte {
		return append(envelope.AppendHeader(nil, envelope.TypePacket, spoofed, at.UnixNano()), v5Datagram(pkts, at)...)
	}
	right, wrong := envelope.NewSigner(replicaSecret), envelope.NewSigner("another-secret-0123456789")
	tmpl, err := envelope.EncodeTemplates([]netflow.TemplateSet{{Exporter: spoofed.Addr(), Version: 9, ID: 256,
		Fields: []netflow.TemplateField{{Type: 1, Length: 4}, {Type: 2, Length: 4}}, Learned: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	attacks := map[string][]byte{
		"no tag":               packet(now, 1000),
		"another secret":       wrong.Seal(packet(now, 1000)),
		"replayed (10m old)":   right.Seal(packet(now.Add(-10*time.Minute), 1000)),
		"from the future":      right.Seal(packet(now.Add(10*time.Minute), 1000)),
		"untagged templates":   tmpl[0],
		"untagged probe":       envelope.AppendHeader(nil, envelope.TypeProbe, netip.AddrPort{}, now.UnixNano()),
		"tag cut off the body": right.Seal(packet(now, 1000))[:envelope.MaxHeaderLen+24+48-4],
	}
	for name, dg := range attacks {
		if _, err := conn.Write(dg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	waitMetric(t, cm, "flowline_replica_unauthenticated_total", 10*time.Second, func(v float64) bool { return v == float64(len(attacks)) })
	// No answer to the untagged probe.
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 512)); err == nil {
		t.Errorf("the collector answered an untagged probe (%d bytes)", n)
	}
	// The control: tagged with the secret, now.
	if _, err := conn.Write(right.Seal(packet(time.Now(), 777))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // a refresh
	decodedEverything(t, collector)
	replicator.Stop()
	collector.Stop()
	got := sums(t, filepath.Join(cdir, "flows.jsonl"))
	if v := got.byExporter[spoofed.Addr().String()]; v != 777 {
		t.Errorf("the spoofed exporter has %d packets; want only the tagged control's 777", v)
	}
	if got.packets-777 != tot.FlowPackets || got.bytes-77700 != tot.FlowBytes {
		t.Fatalf("stored %d packets, %d bytes; want flowgen's %d, %d plus the control's 777, 77700\n%s", got.packets, got.bytes, tot.FlowPackets, tot.FlowBytes, collector.Log())
	}
	if !strings.Contains(collector.Log(), "unauthenticated envelope dropped") {
		t.Errorf("no log line for the dropped envelopes:\n%s", collector.Log())
	}
	t.Logf("%d flows exact through tagged envelopes; %d forged envelopes dropped and counted", tot.Flows, len(attacks))
}
