package amqp

import (
	"fmt"
	"strings"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/plugins/common/pmacct"
)

// keyTemplate is a routing key with pmacct's variables: literal text and
// $peer_src_ip or $<primitive> (any aggregation primitive, e.g. $dst_port),
// filled from each record.
type keyTemplate struct {
	literal string // the whole key when it has no variable
	parts   []keyPart
}

type keyPart struct {
	text  string
	field core.Field // 0 for literal text
}

func (k keyTemplate) static() bool { return len(k.parts) == 0 }

// parseKey splits a routing key into literal text and variables. A variable
// is $ followed by letters, digits and underscores; $$ is a literal $.
func parseKey(s string) (keyTemplate, error) {
	if !strings.Contains(s, "$") {
		return keyTemplate{literal: s}, nil
	}
	var k keyTemplate
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			lit.WriteByte(c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			lit.WriteByte('$')
			i++
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		name := s[i+1 : j]
		p, ok := core.LookupPrimitive(name)
		if !ok {
			return keyTemplate{}, fmt.Errorf("unknown variable $%s (use $peer_src_ip or $<primitive>, e.g. $dst_port)", name)
		}
		if lit.Len() > 0 {
			k.parts = append(k.parts, keyPart{text: lit.String()})
			lit.Reset()
		}
		k.parts = append(k.parts, keyPart{field: p.Field})
		i = j - 1
	}
	if lit.Len() > 0 {
		k.parts = append(k.parts, keyPart{text: lit.String()})
	}
	return k, nil
}

// appendKey appends the key for r. A variable whose field the record does
// not carry expands to nothing... except addresses, which pmacct prints as
// 0.0.0.0 when unset.
func (k keyTemplate) appendKey(b []byte, enc *pmacct.Encoder, r *core.Record) []byte {
	for _, p := range k.parts {
		if p.field == 0 {
			b = append(b, p.text...)
			continue
		}
		b = enc.AppendValue(b, r, p.field)
	}
	return b
}
