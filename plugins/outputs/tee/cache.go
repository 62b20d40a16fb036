package tee

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/plugins/common/envelope"
)

// cacheKey is one exporter's template space: address, version, domain.
type cacheKey struct {
	exp     netip.Addr
	version uint16
	domain  uint32
}

func keyOf(exp netip.Addr, data []byte) cacheKey {
	k := cacheKey{exp: exp, version: binary.BigEndian.Uint16(data)}
	if k.version == 9 && len(data) >= 20 {
		k.domain = binary.BigEndian.Uint32(data[16:])
	} else if k.version == 10 && len(data) >= 16 {
		k.domain = binary.BigEndian.Uint32(data[12:])
	}
	return k
}

// exporterCache holds the latest template records and options data sets of
// one exporter's template space, to send to a receiver that comes back.
type exporterCache struct {
	from         netip.AddrPort
	header       []byte
	sets         map[uint32][]byte // (set id + 1) << 16 | template id -> a set of one template record; options data set id -> the set
	seen         map[uint32]int64  // when each set was last sent by the exporter, Unix nanos
	order        []uint32
	optTemplates map[uint16]bool
}

// maxCachedExporters bounds the template spaces the cache keeps (a flood of
// fake exporters must not grow it without end); beyond it new ones are not
// cached (they still go to every receiver as they arrive).
const maxCachedExporters = 10_000

// expire drops cached sets the exporter has not sent again within ttl (the
// templates' lifetime: a collector would have expired them too) and
// template spaces left empty.
func (t *Tee) expire(now int64, ttl time.Duration) {
	limit := now - int64(ttl)
	for k, ec := range t.cache {
		keep := ec.order[:0]
		for _, key := range ec.order {
			if ec.seen[key] < limit {
				delete(ec.sets, key)
				delete(ec.seen, key)
				if set := key >> 16; set == 2 || set == 4 { // an options template (v9 set 1, IPFIX set 3)
					delete(ec.optTemplates, uint16(key))
				}
				continue
			}
			keep = append(keep, key)
		}
		clear(ec.order[len(keep):])
		ec.order = keep
		if len(ec.order) == 0 {
			delete(t.cache, k)
		}
	}
	t.updateCacheGauges()
}

// forget removes one set from an exporter's cache (an IPFIX withdrawal).
func (ec *exporterCache) forget(key uint32) {
	if _, ok := ec.sets[key]; !ok {
		return
	}
	delete(ec.sets, key)
	delete(ec.seen, key)
	for i, k := range ec.order {
		if k == key {
			ec.order = append(ec.order[:i], ec.order[i+1:]...)
			break
		}
	}
}

func (t *Tee) updateCacheGauges() {
	if t.m.cachedExporters == nil {
		return
	}
	n := 0
	for _, ec := range t.cache {
		n += len(ec.sets)
	}
	t.m.cachedExporters.Set(float64(len(t.cache)))
	t.m.cachedSets.Set(float64(n))
}

// remember caches the template records and options data sets of p.
func (t *Tee) remember(p *core.Packet, exp netip.Addr) {
	hl := envelope.HeaderLen9or10(p.Data)
	if hl == 0 || len(p.Data) < hl {
		return
	}
	k := keyOf(exp, p.Data)
	ec := t.cache[k]
	if ec == nil {
		if len(t.cache) >= maxCachedExporters {
			return
		}
		ec = &exporterCache{sets: map[uint32][]byte{}, seen: map[uint32]int64{}, optTemplates: map[uint16]bool{}}
		t.cache[k] = ec
		defer t.updateCacheGauges()
	}
	now := p.Received
	if now == 0 {
		now = time.Now().UnixNano()
	}
	ec.from = netip.AddrPortFrom(exp, p.Exporter.Port())
	ec.header = append(ec.header[:0], p.Data[:hl]...)
	put := func(key uint32, set []byte) {
		old, ok := ec.sets[key]
		if !ok {
			ec.order = append(ec.order, key)
		}
		ec.sets[key] = append(old[:0], set...)
		ec.seen[key] = now
	}
	envelope.TemplateRecords(p.Data, func(r envelope.TemplateRecord) {
		if r.SetID == 2 && len(r.Record) >= 4 && r.Record[2] == 0 && r.Record[3] == 0 {
			// An IPFIX withdrawal (a template record without fields).
			ec.forget((uint32(r.SetID)+1)<<16 | uint32(r.ID))
			return
		}
		options := r.SetID == 1 || r.SetID == 3
		if options {
			ec.optTemplates[r.ID] = true
		} else {
			delete(ec.optTemplates, r.ID)
		}
		put((uint32(r.SetID)+1)<<16|uint32(r.ID), envelope.AppendSet(nil, r.SetID, r.Record))
	})
	_ = envelope.Walk(p.Data, func(id uint16, set []byte, template bool) {
		if !template && ec.optTemplates[id] {
			put(uint32(id), set)
		}
	})
}

// resend sends r every cached template and options data set, templates
// first, in datagrams of at most about 8 KB.
func (t *Tee) resend(r *receiver) {
	for _, ec := range t.cache {
		var dg []byte
		count := 0
		flush := func() {
			if count > 0 {
				envelope.FixHeader(dg, count)
				if t.sendRaw(r, ec.from, 0, dg) {
					r.templates.Inc()
				}
			}
			dg, count = append(dg[:0], ec.header...), 0
		}
		flush()
		for pass := 0; pass < 2; pass++ {
			for _, key := range ec.order {
				isTemplate := key > 0xffff
				if (pass == 0) != isTemplate {
					continue
				}
				set := ec.sets[key]
				if len(dg)+len(set) > 8000 {
					flush()
				}
				dg = append(dg, set...)
				count++
			}
		}
		flush()
	}
	t.log.Info("sent cached templates to a returning receiver", "receiver", r.name, "exporters", len(t.cache))
}
