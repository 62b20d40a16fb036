// Package print is outputs.print: pmacct's print plugin. It writes records as
// JSON lines or CSV, with the keys, key order and value forms nfacctd 1.7
// prints (checked against nfacctd itself by tests/pmacct).
//
// Life cycle: Init validates the config; Connect opens a static file (dynamic,
// strftime-like names are opened at the first Write); Write appends every
// record of the batch and flushes, so the batch is on disk when it returns;
// Close flushes and closes the file.
package print

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/plugins/common/pmacct"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Outputs, "print", sample, func() any {
		return &Print{Format: "json"}
	})
}

// Interface guards.
var (
	_ core.Output      = (*Print)(nil)
	_ core.Initializer = (*Print)(nil)
)

// Print is the outputs.print plugin and its configuration.
type Print struct {
	// Format is "json" (one object a line) or "csv".
	Format string `toml:"format"`
	// File is the output file; empty means stdout. %Y %m %d %H %M %S %s %w
	// %z and %% are expanded with the time of each write (pmacct's
	// print_output_file).
	File string `toml:"file"`
	// TimestampsUTC prints stamps in UTC instead of local time.
	TimestampsUTC bool `toml:"timestamps_utc"`

	mu      sync.Mutex
	csv     bool
	dynamic bool
	loc     *time.Location
	now     func() time.Time
	stdout  io.Writer // where File == "" writes; os.Stdout unless a test swaps it

	f       *os.File
	w       *bufio.Writer
	curName string
	// header tells whether the CSV header must be written before the next line.
	header bool

	buf     []byte
	nameBuf []byte
	stamps  [2]stampCache
	next    int
}

// Init validates the configuration.
func (p *Print) Init(env *core.Env) error {
	switch strings.ToLower(strings.TrimSpace(p.Format)) {
	case "", "json":
		p.Format, p.csv = "json", false
	case "csv":
		p.Format, p.csv = "csv", true
	default:
		return fmt.Errorf("format %q is not supported: use \"json\" or \"csv\"", p.Format)
	}
	if err := checkName(p.File); err != nil {
		return fmt.Errorf("file %q: %w", p.File, err)
	}
	p.dynamic = strings.Contains(p.File, "%")
	p.loc = time.Local
	if p.TimestampsUTC {
		p.loc = time.UTC
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.stdout == nil {
		p.stdout = os.Stdout
	}
	return nil
}

// Connect opens a static output file (so that a bad path fails at start-up).
func (p *Print) Connect(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loc == nil {
		return errors.New("Connect before Init")
	}
	if p.File == "" {
		p.w = bufio.NewWriterSize(p.stdout, 64<<10)
		p.header = p.csv
		return nil
	}
	if !p.dynamic {
		return p.open(p.File)
	}
	return nil
}

// open closes the current file (if any) and opens name for append.
func (p *Print) open(name string) error {
	if err := p.closeFile(); err != nil {
		return err
	}
	if dir := filepath.Dir(name); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	p.f, p.curName = f, name
	p.header = p.csv && st.Size() == 0
	if p.w == nil {
		p.w = bufio.NewWriterSize(f, 64<<10)
	} else {
		p.w.Reset(f)
	}
	return nil
}

func (p *Print) closeFile() error {
	if p.f == nil {
		return nil
	}
	var err error
	if p.w != nil {
		err = p.w.Flush()
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	p.f, p.curName = nil, ""
	if err != nil {
		return err
	}
	return nil
}

// Write prints every flow record of the batch and flushes.
func (p *Print) Write(ctx context.Context, b *core.Batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.File != "" && (p.dynamic || p.f == nil) {
		name := p.File
		if p.dynamic {
			p.nameBuf = expandName(p.nameBuf[:0], p.File, p.now().In(p.loc))
			if string(p.nameBuf) != p.curName || p.f == nil {
				name = string(p.nameBuf)
			} else {
				name = p.curName
			}
		}
		if name != p.curName || p.f == nil {
			if err := p.open(name); err != nil {
				return err
			}
		}
	}
	if p.w == nil {
		return errors.New("Write before Connect")
	}
	for i := range b.Records {
		r := &b.Records[i]
		if r.Flags&core.FlagOptions != 0 {
			continue
		}
		if p.csv {
			if p.header {
				p.buf = appendCSVHeader(p.buf[:0], r)
				if _, err := p.w.Write(p.buf); err != nil {
					return p.werr(err)
				}
				p.header = false
			}
			p.buf = p.appendCSV(p.buf[:0], r)
		} else {
			p.buf = p.appendJSON(p.buf[:0], r)
		}
		if _, err := p.w.Write(p.buf); err != nil {
			return p.werr(err)
		}
	}
	if err := p.w.Flush(); err != nil {
		return p.werr(err)
	}
	return nil
}

func (p *Print) werr(err error) error {
	name := p.curName
	if name == "" {
		name = "stdout"
	}
	return fmt.Errorf("write %s: %w", name, err)
}

// Close flushes and closes the output file.
func (p *Print) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f != nil {
		return p.closeFile()
	}
	if p.w != nil {
		if err := p.w.Flush(); err != nil {
			return p.werr(err)
		}
	}
	return nil
}

// column is one printed field, in nfacctd's order.
type column struct {
	field Field
	json  string // pmacct's JSON key
	csv   string // pmacct's CSV header
}

// Field aliases core.Field for the tables below.
type Field = core.Field

// Pseudo fields for columns that are not a single Present bit.
const (
	colArrival Field = 1 << 62 // timestamp_arrival: Received, unaggregated records
)

// columns is nfacctd's print order (checked against nfacctd 1.7.7). The
// primitive columns follow core.Primitives (a test checks it); peer_ip_dst
// (the IP next hop with use_ip_next_hop) and the timestamps are the
// non-primitive fields of unaggregated records. stamp_inserted,
// stamp_updated and the counters are printed separately: their order differs
// between JSON and CSV.
var columns = []column{
	{core.FieldSrcMAC, "mac_src", "SRC_MAC"},
	{core.FieldDstMAC, "mac_dst", "DST_MAC"},
	{core.FieldVLAN, "vlan", "VLAN"},
	{core.FieldSrcAS, "as_src", "SRC_AS"},
	{core.FieldDstAS, "as_dst", "DST_AS"},
	{core.FieldExporter, "peer_ip_src", "PEER_SRC_IP"},
	{core.FieldNextHop, "peer_ip_dst", "PEER_DST_IP"},
	{core.FieldInIface, "iface_in", "IN_IFACE"},
	{core.FieldOutIface, "iface_out", "OUT_IFACE"},
	{core.FieldSrcAddr, "ip_src", "SRC_IP"},
	{core.FieldSrcNet, "net_src", "SRC_NET"},
	{core.FieldDstAddr, "ip_dst", "DST_IP"},
	{core.FieldDstNet, "net_dst", "DST_NET"},
	{core.FieldSrcMask, "mask_src", "SRC_MASK"},
	{core.FieldDstMask, "mask_dst", "DST_MASK"},
	{core.FieldSrcPort, "port_src", "SRC_PORT"},
	{core.FieldDstPort, "port_dst", "DST_PORT"},
	{core.FieldTCPFlags, "tcp_flags", "TCP_FLAGS"},
	{core.FieldProto, "ip_proto", "PROTOCOL"},
	{core.FieldTOS, "tos", "TOS"},
	{core.FieldSamplingRate, "sampling_rate", "SAMPLING_RATE"},
	{core.FieldStart, "timestamp_start", "TIMESTAMP_START"},
	{core.FieldEnd, "timestamp_end", "TIMESTAMP_END"},
	{colArrival, "timestamp_arrival", "TIMESTAMP_ARRIVAL"},
}

// present is the record's Present mask plus the pseudo fields it carries.
func present(r *core.Record) Field {
	m := r.Present
	if r.Received != 0 && m&core.FieldStamps == 0 {
		m |= colArrival
	}
	return m
}

// appendJSON appends one JSON line: {"event_type": "purge", ...}.
func (p *Print) appendJSON(b []byte, r *core.Record) []byte {
	m := present(r)
	b = append(b, `{"event_type": "purge"`...)
	for i := range columns {
		c := &columns[i]
		if m&c.field == 0 {
			continue
		}
		b = append(b, `, "`...)
		b = append(b, c.json...)
		b = append(b, `": `...)
		b = p.appendValue(b, r, c.field, true)
	}
	if m&core.FieldStamps != 0 {
		b = append(b, `, "stamp_inserted": "`...)
		b = p.appendStamp(b, r.StampInserted)
		b = append(b, `", "stamp_updated": "`...)
		b = p.appendStamp(b, r.StampUpdated)
		b = append(b, '"')
	}
	if m&core.FieldFlows != 0 {
		b = append(b, `, "flows": `...)
		b = strconv.AppendUint(b, r.Flows, 10)
	}
	if m&core.FieldPackets != 0 {
		b = append(b, `, "packets": `...)
		b = strconv.AppendUint(b, r.Packets, 10)
	}
	if m&core.FieldBytes != 0 {
		b = append(b, `, "bytes": `...)
		b = strconv.AppendUint(b, r.Bytes, 10)
	}
	return append(b, "}\n"...)
}

// appendCSVHeader appends nfacctd's CSV title line for the record's fields.
// Like nfacctd, CSV has no stamp_inserted/stamp_updated columns, and the
// counters come as PACKETS,FLOWS,BYTES.
func appendCSVHeader(b []byte, r *core.Record) []byte {
	m := present(r)
	sep := false
	add := func(s string) {
		if sep {
			b = append(b, ',')
		}
		b = append(b, s...)
		sep = true
	}
	for i := range columns {
		if m&columns[i].field != 0 {
			add(columns[i].csv)
		}
	}
	if m&core.FieldPackets != 0 {
		add("PACKETS")
	}
	if m&core.FieldFlows != 0 {
		add("FLOWS")
	}
	if m&core.FieldBytes != 0 {
		add("BYTES")
	}
	return append(b, '\n')
}

// appendCSV appends one CSV line.
func (p *Print) appendCSV(b []byte, r *core.Record) []byte {
	m := present(r)
	start := len(b)
	for i := range columns {
		c := &columns[i]
		if m&c.field == 0 {
			continue
		}
		if len(b) > start {
			b = append(b, ',')
		}
		b = p.appendValue(b, r, c.field, false)
	}
	if m&core.FieldPackets != 0 {
		if len(b) > start {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, r.Packets, 10)
	}
	if m&core.FieldFlows != 0 {
		if len(b) > start {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, r.Flows, 10)
	}
	if m&core.FieldBytes != 0 {
		if len(b) > start {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, r.Bytes, 10)
	}
	return append(b, '\n')
}

// appendValue appends one column's value; quote says whether strings are
// JSON-quoted (none of the values needs escaping).
func (p *Print) appendValue(b []byte, r *core.Record, f Field, quote bool) []byte {
	q := func(b []byte) []byte {
		if quote {
			return append(b, '"')
		}
		return b
	}
	switch f {
	case core.FieldSrcMAC:
		return q(appendMAC(q(b), &r.SrcMAC))
	case core.FieldDstMAC:
		return q(appendMAC(q(b), &r.DstMAC))
	case core.FieldVLAN:
		return strconv.AppendUint(b, uint64(r.VLAN), 10)
	case core.FieldSrcAS:
		return strconv.AppendUint(b, uint64(r.SrcAS), 10)
	case core.FieldDstAS:
		return strconv.AppendUint(b, uint64(r.DstAS), 10)
	case core.FieldExporter:
		return q(appendAddr(q(b), r.Exporter))
	case core.FieldNextHop:
		return q(appendAddr(q(b), r.NextHop))
	case core.FieldInIface:
		return strconv.AppendUint(b, uint64(r.InIface), 10)
	case core.FieldOutIface:
		return strconv.AppendUint(b, uint64(r.OutIface), 10)
	case core.FieldSrcAddr:
		return q(appendAddr(q(b), r.SrcAddr))
	case core.FieldSrcNet:
		return q(appendAddr(q(b), network(r.SrcAddr, r.SrcMask)))
	case core.FieldDstAddr:
		return q(appendAddr(q(b), r.DstAddr))
	case core.FieldDstNet:
		return q(appendAddr(q(b), network(r.DstAddr, r.DstMask)))
	case core.FieldSrcMask:
		return strconv.AppendUint(b, uint64(r.SrcMask), 10)
	case core.FieldDstMask:
		return strconv.AppendUint(b, uint64(r.DstMask), 10)
	case core.FieldSrcPort:
		return strconv.AppendUint(b, uint64(r.SrcPort), 10)
	case core.FieldDstPort:
		return strconv.AppendUint(b, uint64(r.DstPort), 10)
	case core.FieldTCPFlags:
		return q(strconv.AppendUint(q(b), uint64(r.TCPFlags), 10))
	case core.FieldProto:
		return q(pmacct.AppendProto(q(b), r.Proto))
	case core.FieldTOS:
		return strconv.AppendUint(b, uint64(r.TOS), 10)
	case core.FieldSamplingRate:
		return strconv.AppendUint(b, uint64(r.SamplingRate), 10)
	case core.FieldStart:
		return q(p.appendMicro(q(b), r.Start))
	case core.FieldEnd:
		return q(p.appendMicro(q(b), r.End))
	case colArrival:
		return q(p.appendMicro(q(b), r.Received))
	}
	return b
}

const hexDigits = "0123456789abcdef"

func appendMAC(b []byte, m *[6]byte) []byte {
	for i, x := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
	}
	return b
}
