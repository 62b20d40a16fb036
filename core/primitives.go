package core

import (
	"fmt"
	"slices"
	"strings"
)

// Primitive is an aggregation primitive with pmacct's name, the Record field it
// keys on, and the names pmacct gives it in print output (JSON key, CSV
// header) and in the SQL acct table.
type Primitive struct {
	// Name is pmacct's aggregate name ("src_host").
	Name string
	// Field is the Record field the primitive keys on.
	Field Field
	// JSONKey is pmacct's JSON print key ("ip_src"); the CSV header uses
	// upper-case names of its own (see plugins/outputs/print).
	JSONKey string
	// SQLColumn is the column in pmacct's acct table (sql_table_version 9).
	SQLColumn string
}

// Primitives lists every aggregation primitive Flowline knows, in the order
// pmacct prints them.
var Primitives = []Primitive{
	{"src_mac", FieldSrcMAC, "mac_src", "mac_src"},
	{"dst_mac", FieldDstMAC, "mac_dst", "mac_dst"},
	{"vlan", FieldVLAN, "vlan", "vlan"},
	{"src_as", FieldSrcAS, "as_src", "as_src"},
	{"dst_as", FieldDstAS, "as_dst", "as_dst"},
	{"peer_src_ip", FieldExporter, "peer_ip_src", "peer_ip_src"},
	{"in_iface", FieldInIface, "iface_in", "iface_in"},
	{"out_iface", FieldOutIface, "iface_out", "iface_out"},
	{"src_host", FieldSrcAddr, "ip_src", "ip_src"},
	{"src_net", FieldSrcNet, "net_src", "net_src"},
	{"dst_host", FieldDstAddr, "ip_dst", "ip_dst"},
	{"dst_net", FieldDstNet, "net_dst", "net_dst"},
	{"src_mask", FieldSrcMask, "mask_src", "mask_src"},
	{"dst_mask", FieldDstMask, "mask_dst", "mask_dst"},
	{"src_port", FieldSrcPort, "port_src", "port_src"},
	{"dst_port", FieldDstPort, "port_dst", "port_dst"},
	{"tcpflags", FieldTCPFlags, "tcp_flags", "tcp_flags"},
	{"proto", FieldProto, "ip_proto", "ip_proto"},
	{"tos", FieldTOS, "tos", "tos"},
	{"sampling_rate", FieldSamplingRate, "sampling_rate", "sampling_rate"},
	{"flows", FieldFlows, "flows", "flows"},
}

// LookupPrimitive finds a primitive by pmacct name.
func LookupPrimitive(name string) (Primitive, bool) {
	for _, p := range Primitives {
		if p.Name == name {
			return p, true
		}
	}
	return Primitive{}, false
}

// PrimitiveMask turns a list of primitive names into the mask of Record fields
// they key on. An unknown name is an error that lists the known ones.
func PrimitiveMask(names []string) (Field, error) {
	var m Field
	for _, n := range names {
		p, ok := LookupPrimitive(n)
		if !ok {
			known := make([]string, len(Primitives))
			for i, p := range Primitives {
				known[i] = p.Name
			}
			return 0, fmt.Errorf("unknown primitive %q (known: %v)", n, known)
		}
		m |= p.Field
	}
	return m, nil
}

// MatchPrimitives checks an output's optional `primitives` against those
// the pipeline announces (Env.Primitives) and returns the set to use: the
// pipeline's when the output gives none, the given ones when the pipeline
// has none (records not aggregated), and an error naming both lists when
// both exist and differ as sets.
func MatchPrimitives(given, pipeline []string) ([]string, error) {
	if len(given) == 0 {
		return pipeline, nil
	}
	if pipeline == nil {
		return given, nil
	}
	if _, err := PrimitiveMask(given); err != nil {
		return nil, fmt.Errorf("primitives: %w", err)
	}
	canon := func(ns []string) []string {
		out := make([]string, 0, len(ns))
		for _, n := range ns {
			if p, ok := LookupPrimitive(n); ok {
				n = p.Name
			}
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return out
	}
	if slices.Equal(canon(given), canon(pipeline)) {
		return given, nil
	}
	return nil, fmt.Errorf("primitives = [%s] differ from the aggregate's [%s]: leave primitives out (the output learns them from the pipeline) or make them equal",
		strings.Join(given, ", "), strings.Join(pipeline, ", "))
}
