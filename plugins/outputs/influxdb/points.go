package influxdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/plugins/common/pmacct"
)

// tagSpec turns one primitive into a tag: its key in InfluxDB and how its
// value is written. The primitive names and fields come from
// core.Primitives; only the InfluxDB side lives here.
type tagSpec struct {
	primitive string
	key       string
	// appendValue appends the value's text; ok is false when the record
	// has no value (InfluxDB has no empty tags: the tag is left out).
	appendValue func(dst []byte, r *core.Record) (out []byte, ok bool)
}

// tagKeys renames primitives whose pmacct name reads badly as a tag.
var tagKeys = map[string]string{"peer_src_ip": "exporter"}

// unboundedTags are the primitives that make a series per address or port:
// config check warns when they are tags.
var unboundedTags = map[string]string{
	"src_host": "an address", "dst_host": "an address", "src_mac": "a MAC address", "dst_mac": "a MAC address",
	"src_port": "a port", "dst_port": "a port",
}

// notDefaultTags are left out of the default tag set: addresses, ports and
// TCP flags (every combination would be a series), and flows (a counter).
var notDefaultTags = map[string]bool{
	"src_host": true, "dst_host": true, "src_mac": true, "dst_mac": true,
	"src_port": true, "dst_port": true, "tcpflags": true, "flows": true,
}

// unaggregatedDefaultTags are the tags of records that no aggregate keyed.
var unaggregatedDefaultTags = []string{"peer_src_ip", "proto", "in_iface", "out_iface", "src_as", "dst_as"}

func appendAddr(dst []byte, a netip.Addr) ([]byte, bool) {
	if !a.IsValid() {
		return dst, false
	}
	return a.AppendTo(dst), true
}

func appendUint(dst []byte, v uint64) ([]byte, bool) { return strconv.AppendUint(dst, v, 10), true }

func appendMAC(dst []byte, m [6]byte) ([]byte, bool) { return pmacct.AppendMAC(dst, &m), true }

func appendNet(dst []byte, a netip.Addr, bits uint8) ([]byte, bool) {
	if !a.IsValid() {
		return dst, false
	}
	dst = pmacct.Network(a, bits).AppendTo(dst)
	dst = append(dst, '/')
	return strconv.AppendUint(dst, uint64(bits), 10), true
}

// tagValue appends the value of the primitive named name.
var tagValue = map[string]func(dst []byte, r *core.Record) ([]byte, bool){
	"src_mac":       func(d []byte, r *core.Record) ([]byte, bool) { return appendMAC(d, r.SrcMAC) },
	"dst_mac":       func(d []byte, r *core.Record) ([]byte, bool) { return appendMAC(d, r.DstMAC) },
	"vlan":          func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.VLAN)) },
	"src_as":        func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.SrcAS)) },
	"dst_as":        func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.DstAS)) },
	"peer_src_ip":   func(d []byte, r *core.Record) ([]byte, bool) { return appendAddr(d, r.Exporter) },
	"in_iface":      func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.InIface)) },
	"out_iface":     func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.OutIface)) },
	"src_host":      func(d []byte, r *core.Record) ([]byte, bool) { return appendAddr(d, r.SrcAddr) },
	"dst_host":      func(d []byte, r *core.Record) ([]byte, bool) { return appendAddr(d, r.DstAddr) },
	"src_net":       func(d []byte, r *core.Record) ([]byte, bool) { return appendNet(d, r.SrcAddr, r.SrcMask) },
	"dst_net":       func(d []byte, r *core.Record) ([]byte, bool) { return appendNet(d, r.DstAddr, r.DstMask) },
	"src_mask":      func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.SrcMask)) },
	"dst_mask":      func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.DstMask)) },
	"src_port":      func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.SrcPort)) },
	"dst_port":      func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.DstPort)) },
	"tcpflags":      func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.TCPFlags)) },
	"proto":         func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.Proto)) },
	"tos":           func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.TOS)) },
	"sampling_rate": func(d []byte, r *core.Record) ([]byte, bool) { return appendUint(d, uint64(r.SamplingRate)) },
}

// buildTags checks the configured tag primitives against the known ones and
// returns their specs sorted by key (InfluxDB's preferred order).
func buildTags(names []string) ([]tagSpec, error) {
	var specs []tagSpec
	seen := map[string]bool{}
	for _, n := range names {
		if _, ok := core.LookupPrimitive(n); !ok {
			return nil, fmt.Errorf("tags: unknown primitive %q", n)
		}
		f, ok := tagValue[n]
		if !ok {
			return nil, fmt.Errorf("tags: %q is a counter, written as a field, not a tag", n)
		}
		if seen[n] {
			return nil, fmt.Errorf("tags: %q listed twice", n)
		}
		seen[n] = true
		key := n
		if k, ok := tagKeys[n]; ok {
			key = k
		}
		specs = append(specs, tagSpec{primitive: n, key: key, appendValue: f})
	}
	slices.SortFunc(specs, func(a, b tagSpec) int { return strings.Compare(a.key, b.key) })
	return specs, nil
}

// escapeMeasurement escapes a measurement name for line protocol.
func escapeMeasurement(s string) string {
	return strings.NewReplacer(",", `\,`, " ", `\ `).Replace(s)
}

// appendSeries appends the series key: measurement and tags.
func (o *InfluxDB) appendSeries(dst []byte, r *core.Record) []byte {
	dst = append(dst, o.measurement...)
	for i := range o.tags {
		t := &o.tags[i]
		mark := len(dst)
		dst = append(dst, ',')
		dst = append(dst, t.key...)
		dst = append(dst, '=')
		var ok bool
		if dst, ok = t.appendValue(dst, r); !ok {
			dst = dst[:mark]
		}
	}
	return dst
}

// appendLine appends one point: series, the integer fields and the
// timestamp in nanoseconds, and a newline.
func appendLine(dst []byte, series string, packets, bytes, flows uint64, ts int64) []byte {
	dst = append(dst, series...)
	dst = append(dst, " packets="...)
	dst = strconv.AppendUint(dst, packets, 10)
	dst = append(dst, "i,bytes="...)
	dst = strconv.AppendUint(dst, bytes, 10)
	dst = append(dst, "i,flows="...)
	dst = strconv.AppendUint(dst, flows, 10)
	dst = append(dst, "i "...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '\n')
}

// total is the running total of one series in one bin.
type total struct {
	series                string
	bin                   int64 // the bin's start (Unix ns)
	ts                    int64 // the point's timestamp: bin, or bin + an offset (see README)
	packets, bytes, flows uint64
	dirty                 bool
}

// totalsMagic starts the file that keeps the running totals across a
// restart.
const totalsMagic = "FLINFTO1"

// saveTotals writes the running totals and the cutoff (bins before it had
// their totals forgotten) to path, atomically.
func saveTotals(path string, cutoff int64, ts []total) error {
	buf := []byte(totalsMagic)
	buf = binary.AppendVarint(buf, cutoff)
	buf = binary.AppendUvarint(buf, uint64(len(ts)))
	for i := range ts {
		t := &ts[i]
		buf = binary.AppendUvarint(buf, uint64(len(t.series)))
		buf = append(buf, t.series...)
		buf = binary.AppendVarint(buf, t.bin)
		buf = binary.AppendVarint(buf, t.ts)
		buf = binary.AppendUvarint(buf, t.packets)
		buf = binary.AppendUvarint(buf, t.bytes)
		buf = binary.AppendUvarint(buf, t.flows)
	}
	buf = binary.BigEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

var errTotalsCorrupt = errors.New("totals file is corrupt")

// loadTotals reads what saveTotals wrote; a missing file is no totals
// (found is false).
func loadTotals(path string) (cutoff int64, ts []total, found bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, true, err
	}
	if len(data) < len(totalsMagic)+4 || string(data[:len(totalsMagic)]) != totalsMagic ||
		crc32.ChecksumIEEE(data[:len(data)-4]) != binary.BigEndian.Uint32(data[len(data)-4:]) {
		return 0, nil, true, errTotalsCorrupt
	}
	p := data[len(totalsMagic) : len(data)-4]
	cutoff, k := binary.Varint(p)
	if k <= 0 {
		return 0, nil, true, errTotalsCorrupt
	}
	p = p[k:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)) {
		return 0, nil, true, errTotalsCorrupt
	}
	p = p[k:]
	out := make([]total, 0, n)
	for range n {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return 0, nil, true, errTotalsCorrupt
		}
		t := total{series: string(p[k : k+int(l)])}
		p = p[k+int(l):]
		for _, v := range []*int64{&t.bin, &t.ts} {
			x, k := binary.Varint(p)
			if k <= 0 {
				return 0, nil, true, errTotalsCorrupt
			}
			*v, p = x, p[k:]
		}
		for _, v := range []*uint64{&t.packets, &t.bytes, &t.flows} {
			x, k := binary.Uvarint(p)
			if k <= 0 {
				return 0, nil, true, errTotalsCorrupt
			}
			*v, p = x, p[k:]
		}
		out = append(out, t)
	}
	if len(p) != 0 {
		return 0, nil, true, errTotalsCorrupt
	}
	return cutoff, out, true, nil
}
