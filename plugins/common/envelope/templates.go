package envelope

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/flowline/flowline/plugins/common/netflow"
)

// MaxDatagram is the largest envelope EncodeTemplates writes, well under the
// 65,507-byte UDP limit over IPv4.
const MaxDatagram = 60000

// EncodeTemplates encodes templates into one or more template envelopes
// (type 2), each at most MaxDatagram bytes. A template too large for one
// datagram on its own is an error.
func EncodeTemplates(sets []netflow.TemplateSet) ([][]byte, error) {
	if len(sets) == 0 {
		return nil, nil
	}
	body, err := netflow.MarshalTemplates(sets)
	if err != nil {
		return nil, fmt.Errorf("encode shared templates: %w", err)
	}
	if len(body)+baseLen <= MaxDatagram {
		dg := AppendHeader(make([]byte, 0, baseLen+len(body)), TypeTemplates, netip.AddrPort{}, time.Now().UnixNano())
		return [][]byte{append(dg, body...)}, nil
	}
	if len(sets) == 1 {
		return nil, fmt.Errorf("encode shared templates: template %d of %s is %d bytes encoded, more than one datagram holds", sets[0].ID, sets[0].Exporter, len(body))
	}
	a, err := EncodeTemplates(sets[:len(sets)/2])
	if err != nil {
		return nil, err
	}
	b, err := EncodeTemplates(sets[len(sets)/2:])
	if err != nil {
		return nil, err
	}
	return append(a, b...), nil
}

// DecodeTemplates decodes the payload of a template envelope.
func DecodeTemplates(payload []byte) ([]netflow.TemplateSet, error) {
	sets, err := netflow.UnmarshalTemplates(payload)
	if err != nil {
		return nil, fmt.Errorf("shared templates: %w", err)
	}
	return sets, nil
}

// Group splits templates by (exporter, version, domain): each group can be
// re-encoded as one export datagram. Groups and the templates in them come
// in a stable order.
func Group(sets []netflow.TemplateSet) [][]netflow.TemplateSet {
	type key struct {
		exp     netip.Addr
		version uint16
		domain  uint32
	}
	idx := map[key]int{}
	var out [][]netflow.TemplateSet
	for _, ts := range sets {
		k := key{ts.Exporter, ts.Version, ts.Domain}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], ts)
	}
	for _, g := range out {
		sort.SliceStable(g, func(i, j int) bool { return g[i].ID < g[j].ID })
	}
	return out
}

// AppendTemplatePacket re-encodes templates that share exporter, version and
// domain (one group of Group) as a NetFlow v9 or IPFIX export datagram that
// holds only template and options template sets, and appends it to dst.
// Fed to a decoder as coming from the templates' exporter, it installs
// exactly these templates. IPFIX withdrawals become withdrawal records;
// NetFlow v9 has none, so v9 withdrawals are left out. It returns dst
// unchanged when nothing is left to encode.
func AppendTemplatePacket(dst []byte, sets []netflow.TemplateSet, exportTime time.Time) []byte {
	if len(sets) == 0 {
		return dst
	}
	v := sets[0].Version
	if v != 9 && v != 10 {
		return dst
	}
	start := len(dst)
	secs := uint32(exportTime.Unix())
	if v == 9 {
		dst = binary.BigEndian.AppendUint16(dst, 9)
		dst = binary.BigEndian.AppendUint16(dst, 0) // count, set below
		dst = binary.BigEndian.AppendUint32(dst, 0) // sysUptime
		dst = binary.BigEndian.AppendUint32(dst, secs)
		dst = binary.BigEndian.AppendUint32(dst, 0) // sequence
		dst = binary.BigEndian.AppendUint32(dst, sets[0].Domain)
	} else {
		dst = binary.BigEndian.AppendUint16(dst, 10)
		dst = binary.BigEndian.AppendUint16(dst, 0) // length, set below
		dst = binary.BigEndian.AppendUint32(dst, secs)
		dst = binary.BigEndian.AppendUint32(dst, 0) // sequence
		dst = binary.BigEndian.AppendUint32(dst, sets[0].Domain)
	}
	count := 0
	for _, options := range []bool{false, true} {
		setStart := len(dst)
		var setID uint16
		switch {
		case v == 9 && !options:
			setID = 0
		case v == 9:
			setID = 1
		case !options:
			setID = 2
		default:
			setID = 3
		}
		dst = binary.BigEndian.AppendUint16(dst, setID)
		dst = binary.BigEndian.AppendUint16(dst, 0)
		n := 0
		for _, ts := range sets {
			if ts.Options != options || ts.Version != v {
				continue
			}
			if ts.Withdrawn {
				if v == 9 {
					continue
				}
				dst = binary.BigEndian.AppendUint16(dst, ts.ID)
				dst = binary.BigEndian.AppendUint16(dst, 0)
				n++
				continue
			}
			if len(ts.Fields) == 0 {
				continue
			}
			dst = binary.BigEndian.AppendUint16(dst, ts.ID)
			switch {
			case v == 9 && options:
				scope := int(ts.ScopeFieldCount)
				dst = binary.BigEndian.AppendUint16(dst, uint16(4*scope))
				dst = binary.BigEndian.AppendUint16(dst, uint16(4*(len(ts.Fields)-scope)))
			case v == 9:
				dst = binary.BigEndian.AppendUint16(dst, uint16(len(ts.Fields)))
			case options:
				dst = binary.BigEndian.AppendUint16(dst, uint16(len(ts.Fields)))
				dst = binary.BigEndian.AppendUint16(dst, ts.ScopeFieldCount)
			default:
				dst = binary.BigEndian.AppendUint16(dst, uint16(len(ts.Fields)))
			}
			for _, f := range ts.Fields {
				typ := f.Type
				if v == 10 && f.Enterprise != 0 {
					typ |= 0x8000
				}
				dst = binary.BigEndian.AppendUint16(dst, typ)
				dst = binary.BigEndian.AppendUint16(dst, f.Length)
				if v == 10 && f.Enterprise != 0 {
					dst = binary.BigEndian.AppendUint32(dst, f.Enterprise)
				}
			}
			n++
		}
		if n == 0 {
			dst = dst[:setStart]
			continue
		}
		binary.BigEndian.PutUint16(dst[setStart+2:], uint16(len(dst)-setStart))
		count += n
	}
	if count == 0 {
		return dst[:start]
	}
	if v == 9 {
		binary.BigEndian.PutUint16(dst[start+2:], uint16(count))
	} else {
		binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
	}
	return dst
}
