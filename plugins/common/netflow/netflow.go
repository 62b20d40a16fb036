// Package netflow decodes NetFlow v5, NetFlow v9 and IPFIX export packets
// into core.Record values.
//
// The stateless helpers (DecodeV5) work on a single datagram. The Decoder
// keeps the state that v9 and IPFIX need: templates keyed by (exporter
// address, version, observation domain, template id), the sampler tables that
// options data announce, and a bounded per-exporter queue of data sets that
// arrived before their template. Templates are compiled once into a flat list
// of operations so that decoding a flow record allocates nothing.
package netflow

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowline/flowline/core"
)

// ErrMalformed is wrapped by every error that reports a malformed datagram.
var ErrMalformed = errors.New("malformed packet")

// ErrVersion is wrapped by the error Decode returns for a datagram that is
// neither NetFlow v5, NetFlow v9 nor IPFIX.
var ErrVersion = errors.New("unsupported export version")

// DecoderConfig configures a Decoder. Zero values select the defaults.
type DecoderConfig struct {
	// PendingMaxPerExporter bounds the data sets queued per exporter address
	// while they wait for their template; default 4096.
	PendingMaxPerExporter int
	// PendingMaxAge is how long a queued data set may wait; older ones are
	// dropped by Expire. Default 5 minutes.
	PendingMaxAge time.Duration
	// TemplateTTL, when not zero, makes Expire remove templates that were not
	// refreshed within it. Zero means templates never expire.
	TemplateTTL time.Duration
	// KeepExtensions fills Record.Ext with the elements that have no typed
	// field; their values are copied into the batch arena.
	KeepExtensions bool
	// EmitOptions also appends options data records (with core.FlagOptions).
	// By default they only feed the sampler table.
	EmitOptions bool
	// PendingMaxBytes bounds the bytes of all queued data sets together
	// (every exporter); a data set beyond it is dropped. Default 16 MiB.
	PendingMaxBytes int
	// MaxExporters bounds the exporter addresses that have templates; a
	// template of a new exporter beyond it is refused. Default 10,000.
	MaxExporters int
	// MaxTemplatesPerExporter bounds the templates of one exporter address
	// (every version and domain); a new one beyond it is refused. Default
	// 4,096.
	MaxTemplatesPerExporter int
	// MaxTemplateChangesPerMinute bounds how many templates one exporter
	// may add or redefine in a minute (refreshes of unchanged templates are
	// free); more are refused until the minute is over. Default 1,000.
	MaxTemplateChangesPerMinute int
}

// Defaults of the decoder's caps on state a sender can grow.
const (
	DefaultPendingMaxBytes             = 16 << 20
	DefaultMaxExporters                = 10_000
	DefaultMaxTemplatesPerExporter     = 4096
	DefaultMaxTemplateChangesPerMinute = 1000
)

// DefaultPendingMaxPerExporter is the default bound of the pending queue.
const DefaultPendingMaxPerExporter = 4096

// DefaultPendingMaxAge is the default age after which queued data sets expire.
const DefaultPendingMaxAge = 5 * time.Minute

// DecodeStats counts what one call decoded.
type DecodeStats struct {
	Records        int // flow records appended
	OptionsRecords int // options data records decoded (appended only with EmitOptions)
	Templates      int // template and options template records learned or refreshed
	Withdrawn      int // templates withdrawn
	Queued         int // data sets put in the pending queue by this call
	Released       int // queued data sets decoded by this call
	DroppedQueued  int // queued data sets dropped because the exporter's queue was full (oldest first) or all queues were (PendingMaxBytes)
	Refused        int // templates refused by a cap (exporters, templates per exporter, changes per minute)
}

// TemplateSet is a self-contained, serializable template: enough to rebuild
// it at a peer or after a restart.
type TemplateSet struct {
	Exporter netip.Addr `json:"exporter"`
	// Version is 9 (NetFlow v9) or 10 (IPFIX).
	Version uint16 `json:"version"`
	// Domain is the v9 source id or the IPFIX observation domain id.
	Domain uint32 `json:"domain"`
	ID     uint16 `json:"id"`
	// Options marks an options template; its first ScopeFieldCount fields
	// are the scope fields.
	Options         bool            `json:"options,omitempty"`
	ScopeFieldCount uint16          `json:"scope_field_count,omitempty"`
	Fields          []TemplateField `json:"fields,omitempty"`
	// Withdrawn marks a withdrawal (IPFIX template record with no fields).
	Withdrawn bool      `json:"withdrawn,omitempty"`
	Learned   time.Time `json:"learned"`
}

// TemplateField is one field specifier of a template.
type TemplateField struct {
	Type       uint16 `json:"type"` // element id without the enterprise bit
	Length     uint16 `json:"length"`
	Enterprise uint32 `json:"enterprise,omitempty"`
}

type tkey struct {
	exporter netip.Addr
	version  uint16
	id       uint16
	domain   uint32
}

type skey struct {
	exporter netip.Addr
	version  uint16
	domain   uint32
}

// samplerState is what options data told us about one (exporter, domain).
type samplerState struct {
	defaultRate uint32
	rates       map[uint32]uint32 // sampler id -> rate
	sysInitMs   uint64            // systemInitTimeMilliseconds from options data
}

type pendingSet struct {
	ctx    msgCtx
	setID  uint16
	data   []byte
	queued int64
}

// Decoder is the stateful, template-aware decoder. It is not safe for
// concurrent use: one goroutine owns it.
type Decoder struct {
	// OnTemplate, if set, is called for each template or options template
	// learned from a datagram (new or changed, not mere refreshes) and for
	// each withdrawal, so that the caller can persist and share it. The
	// Fields slice must not be modified. AddTemplates does not call it.
	OnTemplate func(TemplateSet)

	cfg       DecoderConfig
	templates map[tkey]*template
	samplers  map[skey]*samplerState
	pending   map[netip.Addr][]pendingSet
	npending  int
	// pendingBytes is the size of every queued data set.
	pendingBytes int
	// exporters counts templates and recent changes per exporter address.
	exporters map[netip.Addr]*exporterState

	scratchFields []TemplateField
	optRec        core.Record
}

// NewDecoder returns a Decoder with cfg, defaults filled in.
func NewDecoder(cfg DecoderConfig) *Decoder {
	if cfg.PendingMaxPerExporter <= 0 {
		cfg.PendingMaxPerExporter = DefaultPendingMaxPerExporter
	}
	if cfg.PendingMaxAge <= 0 {
		cfg.PendingMaxAge = DefaultPendingMaxAge
	}
	if cfg.PendingMaxBytes <= 0 {
		cfg.PendingMaxBytes = DefaultPendingMaxBytes
	}
	if cfg.MaxExporters <= 0 {
		cfg.MaxExporters = DefaultMaxExporters
	}
	if cfg.MaxTemplatesPerExporter <= 0 {
		cfg.MaxTemplatesPerExporter = DefaultMaxTemplatesPerExporter
	}
	if cfg.MaxTemplateChangesPerMinute <= 0 {
		cfg.MaxTemplateChangesPerMinute = DefaultMaxTemplateChangesPerMinute
	}
	return &Decoder{
		cfg:       cfg,
		templates: make(map[tkey]*template),
		samplers:  make(map[skey]*samplerState),
		pending:   make(map[netip.Addr][]pendingSet),
		exporters: make(map[netip.Addr]*exporterState),
	}
}

// exporterState is what the caps keep per exporter address.
type exporterState struct {
	templates   int
	minute      int64 // the Unix minute of changes
	changes     int   // template adds and changes in that minute
	lastRefused int64
}

// admit says whether template k may be added or changed at unix-nanosecond
// time now (exists: it is a change of a known template), and counts it.
func (d *Decoder) admit(k tkey, exists bool, now int64) bool {
	e := d.exporters[k.exporter]
	if e == nil {
		if len(d.exporters) >= d.cfg.MaxExporters {
			return false
		}
		e = &exporterState{}
		d.exporters[k.exporter] = e
	}
	if !exists && e.templates >= d.cfg.MaxTemplatesPerExporter {
		return false
	}
	if m := now / int64(time.Minute); m != e.minute {
		e.minute, e.changes = m, 0
	}
	if e.changes >= d.cfg.MaxTemplateChangesPerMinute {
		return false
	}
	e.changes++
	return true
}

// put installs a compiled template, keeping the per-exporter count.
func (d *Decoder) put(k tkey, t *template) {
	if _, ok := d.templates[k]; !ok {
		e := d.exporters[k.exporter]
		if e == nil {
			e = &exporterState{}
			d.exporters[k.exporter] = e
		}
		e.templates++
	}
	d.templates[k] = t
}

// remove deletes a template, forgetting an exporter that has none left.
func (d *Decoder) remove(k tkey) {
	if _, ok := d.templates[k]; !ok {
		return
	}
	delete(d.templates, k)
	if e := d.exporters[k.exporter]; e != nil {
		e.templates--
		if e.templates <= 0 {
			delete(d.exporters, k.exporter)
		}
	}
}

// PendingBytes is the size of the data sets waiting for their template.
func (d *Decoder) PendingBytes() int { return d.pendingBytes }

// Exporters is the number of exporter addresses that have templates.
func (d *Decoder) Exporters() int { return len(d.exporters) }

// Decode decodes one datagram (the version is read from its first two bytes:
// 5, 9 or 10) and appends the flow records to b. Record.Exporter and
// ExporterPort come from pkt.Exporter, Received from pkt.Received.
//
// Data sets whose template is unknown are copied into a bounded per-exporter
// queue; when their template arrives (in this or a later datagram, or via
// AddTemplates) they are decoded and appended to the batch of that call. A
// malformed datagram returns an error wrapping ErrMalformed that says what was
// wrong and at which offset; records already appended from its valid earlier
// sets stay appended.
func (d *Decoder) Decode(pkt core.Packet, b *core.Batch) (DecodeStats, error) {
	var st DecodeStats
	data := pkt.Data
	if len(data) < 2 {
		return st, fmt.Errorf("netflow: datagram of %d bytes from %s: %w", len(data), pkt.Exporter, ErrMalformed)
	}
	switch v := be16(data); v {
	case 5:
		n, err := DecodeV5(data, pkt.Exporter, pkt.Received, b)
		st.Records = n
		if err != nil {
			return st, fmt.Errorf("from %s: %w", pkt.Exporter, err)
		}
		return st, nil
	case 9:
		err := d.decodeV9(pkt, b, &st)
		return st, err
	case 10:
		err := d.decodeIPFIX(pkt, b, &st)
		return st, err
	default:
		return st, fmt.Errorf("netflow: version %d from %s: %w", v, pkt.Exporter, ErrVersion)
	}
}

// Expire drops queued data sets older than PendingMaxAge and, when
// TemplateTTL is set, templates not refreshed within it. It returns how many
// of each it dropped.
func (d *Decoder) Expire(now time.Time) (expiredQueued, expiredTemplates int) {
	limit := now.Add(-d.cfg.PendingMaxAge).UnixNano()
	for addr, q := range d.pending {
		keep := q[:0]
		for _, p := range q {
			if p.queued < limit {
				expiredQueued++
				d.pendingBytes -= len(p.data)
				continue
			}
			keep = append(keep, p)
		}
		clear(q[len(keep):])
		if len(keep) == 0 {
			delete(d.pending, addr)
		} else {
			d.pending[addr] = keep
		}
	}
	d.npending -= expiredQueued
	if d.cfg.TemplateTTL > 0 {
		tl := now.Add(-d.cfg.TemplateTTL)
		for k, t := range d.templates {
			if t.set.Learned.Before(tl) {
				d.remove(k)
				expiredTemplates++
			}
		}
	}
	return expiredQueued, expiredTemplates
}

// Templates returns a snapshot of all templates the decoder knows.
func (d *Decoder) Templates() []TemplateSet {
	out := make([]TemplateSet, 0, len(d.templates))
	for _, t := range d.templates {
		ts := t.set
		ts.Fields = append([]TemplateField(nil), ts.Fields...)
		out = append(out, ts)
	}
	return out
}

// Pending reports how many data sets wait for their template.
func (d *Decoder) Pending() int { return d.npending }

// AddTemplates installs templates (from a persisted file or a peer). A set
// with Withdrawn removes the template. Queued data sets that the templates
// unlock are decoded into b. Invalid sets (wrong version, no fields) are
// skipped. OnTemplate is not called.
func (d *Decoder) AddTemplates(sets []TemplateSet, b *core.Batch) DecodeStats {
	var st DecodeStats
	for _, ts := range sets {
		if ts.Version != 9 && ts.Version != 10 {
			continue
		}
		k := tkey{exporter: ts.Exporter, version: ts.Version, id: ts.ID, domain: ts.Domain}
		if ts.Withdrawn {
			if _, ok := d.templates[k]; ok {
				d.remove(k)
				st.Withdrawn++
			}
			continue
		}
		if len(ts.Fields) == 0 || int(ts.ScopeFieldCount) > len(ts.Fields) || ts.ID < 256 {
			continue
		}
		ts.Fields = append([]TemplateField(nil), ts.Fields...)
		if ts.Learned.IsZero() {
			ts.Learned = time.Now()
		}
		_, exists := d.templates[k]
		if !d.admit(k, exists, time.Now().UnixNano()) {
			st.Refused++
			continue
		}
		d.put(k, compile(ts, d.cfg.KeepExtensions))
		st.Templates++
		d.release(k, b, &st)
	}
	return st
}
