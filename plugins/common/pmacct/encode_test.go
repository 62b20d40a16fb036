package pmacct

import (
	"testing"

	"github.com/flowline/flowline/core"
)

// The primitive columns keep core.Primitives' order and JSON keys.
func TestColumnsFollowPrimitives(t *testing.T) {
	pos := map[core.Field]int{}
	for i, c := range columns {
		pos[c.field] = i
	}
	last := -1
	for _, pr := range core.Primitives {
		if pr.Field == core.FieldFlows {
			continue // printed with the counters
		}
		i, ok := pos[pr.Field]
		if !ok {
			t.Errorf("primitive %s has no column", pr.Name)
			continue
		}
		if columns[i].json != pr.JSONKey {
			t.Errorf("primitive %s: key %q, core says %q", pr.Name, columns[i].json, pr.JSONKey)
		}
		if i < last {
			t.Errorf("primitive %s out of order", pr.Name)
		}
		last = i
	}
}
