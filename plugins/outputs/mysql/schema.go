package mysql

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/plugins/common/pmacct"
)

// column is one column of the acct table: its pmacct name and type, how a row
// fills it, and the compact type it takes in the archive.
type column struct {
	name string
	// typ is the column type pmacct's v9 schema (or sql/README.mysql for
	// primitives outside v9) gives it.
	typ string
	// archiveType is the compact type of the same value in the archive table.
	archiveType string
	// field is the Record field behind it; 0 for columns no Flowline
	// primitive fills (tag, class_id), which hold their zero value.
	field core.Field
	// text columns are quoted string literals in statements.
	text bool
	// appendValue appends the column's SQL literal for r (quoted when text).
	appendValue func(b []byte, r *row) []byte
	// fromArchive is the SQL expression that turns the archive column back
	// into the acct form, for the acct_all view.
	fromArchive string
	// appendKey appends the value as the server orders it in an index
	// (text then a 0 byte, numbers big-endian), for sorting rows into the
	// primary key's order; nil for constant columns.
	appendKey func(b []byte, r *row) []byte
	// toArchive, when set, is the SQL expression that turns the acct column
	// into the archive's form (else the type decides).
	toArchive string
}

// v9Columns are pmacct's sql_table_version 9 key columns in the order of
// sql/pmacct-create-db_v9.mysql; its primary key is these plus stamp_inserted.
var v9Columns = []string{"tag", "class_id", "mac_src", "mac_dst", "vlan", "as_src", "as_dst",
	"ip_src", "ip_dst", "port_src", "port_dst", "tcp_flags", "ip_proto", "tos"}

// v9Key are the v9 columns in its primary key (tcp_flags is not: pmacct ORs it).
var v9Key = []string{"tag", "class_id", "mac_src", "mac_dst", "vlan", "as_src", "as_dst",
	"ip_src", "ip_dst", "port_src", "port_dst", "ip_proto", "tos"}

func uintCol(name, typ, archiveType string, f core.Field, get func(r *row) uint64) column {
	app := func(b []byte, r *row) []byte { return strconv.AppendUint(b, get(r), 10) }
	return column{name: name, typ: typ, archiveType: archiveType, field: f, appendValue: app, fromArchive: name,
		appendKey: func(b []byte, r *row) []byte { return binary.BigEndian.AppendUint64(b, get(r)) }}
}

func addrCol(name string, f core.Field, get func(r *row) netip.Addr) column {
	return column{name: name, typ: "CHAR(45) NOT NULL", archiveType: "VARBINARY(16) NOT NULL", field: f, text: true,
		appendValue: func(b []byte, r *row) []byte {
			b = append(b, '\'')
			b = pmacct.AppendAddr(b, get(r))
			return append(b, '\'')
		},
		fromArchive: "INET6_NTOA(" + name + ")",
		appendKey:   func(b []byte, r *row) []byte { return append(pmacct.AppendAddr(b, get(r)), 0) },
	}
}

func macCol(name string, f core.Field, get func(r *row) *[6]byte) column {
	return column{name: name, typ: "CHAR(17) NOT NULL", archiveType: "BINARY(6) NOT NULL", field: f, text: true,
		appendValue: func(b []byte, r *row) []byte {
			b = append(b, '\'')
			b = pmacct.AppendMAC(b, get(r))
			return append(b, '\'')
		},
		appendKey:   func(b []byte, r *row) []byte { return append(pmacct.AppendMAC(b, get(r)), 0) },
		fromArchive: "LOWER(CONCAT_WS(':', HEX(SUBSTR(" + name + ",1,1)), HEX(SUBSTR(" + name + ",2,1)), HEX(SUBSTR(" + name + ",3,1)), HEX(SUBSTR(" + name + ",4,1)), HEX(SUBSTR(" + name + ",5,1)), HEX(SUBSTR(" + name + ",6,1))))",
	}
}

// allColumns are every key column Flowline can write, by name.
var allColumns = func() map[string]column {
	cols := []column{
		{name: "tag", typ: "INT(4) UNSIGNED NOT NULL", archiveType: "INT UNSIGNED NOT NULL",
			appendValue: func(b []byte, _ *row) []byte { return append(b, '0') }, fromArchive: "tag"},
		{name: "class_id", typ: "CHAR(16) NOT NULL", archiveType: "VARCHAR(16) NOT NULL", text: true,
			appendValue: func(b []byte, _ *row) []byte { return append(b, "''"...) }, fromArchive: "class_id"},
		macCol("mac_src", core.FieldSrcMAC, func(r *row) *[6]byte { return &r.SrcMAC }),
		macCol("mac_dst", core.FieldDstMAC, func(r *row) *[6]byte { return &r.DstMAC }),
		uintCol("vlan", "INT(2) UNSIGNED NOT NULL", "SMALLINT UNSIGNED NOT NULL", core.FieldVLAN, func(r *row) uint64 { return uint64(r.VLAN) }),
		uintCol("as_src", "INT(4) UNSIGNED NOT NULL", "INT UNSIGNED NOT NULL", core.FieldSrcAS, func(r *row) uint64 { return uint64(r.SrcAS) }),
		uintCol("as_dst", "INT(4) UNSIGNED NOT NULL", "INT UNSIGNED NOT NULL", core.FieldDstAS, func(r *row) uint64 { return uint64(r.DstAS) }),
		addrCol("peer_ip_src", core.FieldExporter, func(r *row) netip.Addr { return r.Exporter }),
		uintCol("iface_in", "INT(4) UNSIGNED NOT NULL", "INT UNSIGNED NOT NULL", core.FieldInIface, func(r *row) uint64 { return uint64(r.InIface) }),
		uintCol("iface_out", "INT(4) UNSIGNED NOT NULL", "INT UNSIGNED NOT NULL", core.FieldOutIface, func(r *row) uint64 { return uint64(r.OutIface) }),
		addrCol("ip_src", core.FieldSrcAddr, func(r *row) netip.Addr { return r.SrcAddr }),
		addrCol("net_src", core.FieldSrcNet, func(r *row) netip.Addr { return pmacct.Network(r.SrcAddr, r.SrcMask) }),
		addrCol("ip_dst", core.FieldDstAddr, func(r *row) netip.Addr { return r.DstAddr }),
		addrCol("net_dst", core.FieldDstNet, func(r *row) netip.Addr { return pmacct.Network(r.DstAddr, r.DstMask) }),
		uintCol("mask_src", "INT(1) UNSIGNED NOT NULL", "TINYINT UNSIGNED NOT NULL", core.FieldSrcMask, func(r *row) uint64 { return uint64(r.SrcMask) }),
		uintCol("mask_dst", "INT(1) UNSIGNED NOT NULL", "TINYINT UNSIGNED NOT NULL", core.FieldDstMask, func(r *row) uint64 { return uint64(r.DstMask) }),
		uintCol("port_src", "INT(2) UNSIGNED NOT NULL", "SMALLINT UNSIGNED NOT NULL", core.FieldSrcPort, func(r *row) uint64 { return uint64(r.SrcPort) }),
		uintCol("port_dst", "INT(2) UNSIGNED NOT NULL", "SMALLINT UNSIGNED NOT NULL", core.FieldDstPort, func(r *row) uint64 { return uint64(r.DstPort) }),
		uintCol("tcp_flags", "INT(4) UNSIGNED NOT NULL", "SMALLINT UNSIGNED NOT NULL", core.FieldTCPFlags, func(r *row) uint64 { return uint64(r.TCPFlags) }),
		{name: "ip_proto", typ: "CHAR(6) NOT NULL", archiveType: "TINYINT UNSIGNED NOT NULL", field: core.FieldProto, text: true,
			appendValue: func(b []byte, r *row) []byte {
				b = append(b, '\'')
				b = pmacct.AppendProto(b, r.Proto)
				return append(b, '\'')
			},
			appendKey:   func(b []byte, r *row) []byte { return append(pmacct.AppendProto(b, r.Proto), 0) },
			fromArchive: protoCase("ip_proto"),
		},
		uintCol("tos", "INT(4) UNSIGNED NOT NULL", "TINYINT UNSIGNED NOT NULL", core.FieldTOS, func(r *row) uint64 { return uint64(r.TOS) }),
		uintCol("sampling_rate", "INT(4) UNSIGNED NOT NULL", "INT UNSIGNED NOT NULL", core.FieldSamplingRate, func(r *row) uint64 { return uint64(r.SamplingRate) }),
	}
	m := make(map[string]column, len(cols))
	for _, c := range cols {
		m[c.name] = c
	}
	return m
}()

// sqlColumn is the acct column of a primitive in table version 9.
func sqlColumn(p core.Primitive) string { return p.SQLColumn }

// layout is the set of columns one output writes.
type layout struct {
	// keys are the key columns in table order (without stamp_inserted).
	keys []column
	// flows says whether the flows counter column is written.
	flows bool
	// stampFirst says whether the primary key starts with stamp_inserted
	// (tables Flowline creates with optimize_clauses).
	stampFirst bool
}

// newLayout picks the columns: with optimize_clauses the primitives' own
// columns, without it every v9 column (a primitive outside v9 is an error,
// as in pmacct).
func newLayout(primitives []string, optimize bool) (layout, error) {
	var l layout
	chosen := map[string]bool{}
	for _, n := range primitives {
		p, ok := core.LookupPrimitive(n)
		if !ok {
			_, err := core.PrimitiveMask([]string{n})
			return l, fmt.Errorf("primitives: %w", err)
		}
		if p.Name == "flows" {
			l.flows = true
			continue
		}
		chosen[sqlColumn(p)] = true
	}
	if !optimize {
		for c := range chosen {
			if !slices.Contains(v9Columns, c) {
				return l, fmt.Errorf("primitives: column %s is not in pmacct's v9 table: set optimize_clauses = true (and a table with that column)", c)
			}
		}
		for _, n := range v9Columns {
			c := allColumns[n]
			if len(primitives) > 0 && !chosen[n] {
				c = fakeColumn(c)
			}
			l.keys = append(l.keys, c)
		}
		l.flows = true
		return l, nil
	}
	if len(chosen) == 0 {
		return l, fmt.Errorf("primitives: optimize_clauses = true needs the aggregate's primitives (the columns to write)")
	}
	// Keep pmacct's column order (v9 order, then the others in the order
	// Flowline lists primitives).
	order := []string{"tag", "class_id", "mac_src", "mac_dst", "vlan", "as_src", "as_dst", "peer_ip_src",
		"iface_in", "iface_out", "ip_src", "net_src", "ip_dst", "net_dst", "mask_src", "mask_dst",
		"port_src", "port_dst", "tcp_flags", "ip_proto", "tos", "sampling_rate"}
	for _, n := range order {
		if chosen[n] {
			l.keys = append(l.keys, allColumns[n])
		}
	}
	l.stampFirst = true
	return l, nil
}

// fakeColumn is a v9 column no primitive selects, written as pmacct's
// non-optimized clauses write it (its "fake" handlers): class_id 'unknown',
// MAC addresses '0:0:0:0:0:0', numbers 0, addresses '0.0.0.0'.
func fakeColumn(c column) column {
	var lit string
	switch {
	case c.name == "class_id":
		lit = "'unknown'"
	case strings.HasPrefix(c.name, "mac_"):
		lit = "'0:0:0:0:0:0'"
		c.toArchive = "X'000000000000'"
		c.fromArchive = "'0:0:0:0:0:0'"
	case strings.HasPrefix(c.typ, "CHAR(45)"):
		lit = "'0.0.0.0'"
	case c.name == "ip_proto":
		lit = "'0'"
	default:
		lit = "0"
	}
	c.appendValue = func(b []byte, _ *row) []byte { return append(b, lit...) }
	c.appendKey = nil
	return c
}

// appendSortKey appends r's primary key as bytes that sort as the server
// sorts the key (for ascii_bin and the case-insensitive collations alike:
// the text Flowline writes is lower case).
func (l layout) appendSortKey(b []byte, r *row) []byte {
	stamp := func(b []byte) []byte { return binary.BigEndian.AppendUint64(b, uint64(r.Inserted)^1<<63) }
	if l.stampFirst {
		b = stamp(b)
	}
	for _, c := range l.keys {
		if c.appendKey != nil && c.name != "tcp_flags" {
			b = c.appendKey(b, r)
		}
	}
	if !l.stampFirst {
		b = stamp(b)
	}
	return b
}

// names lists the layout's column names (keys, counters, stamps).
func (l layout) names() []string {
	var n []string
	for _, c := range l.keys {
		n = append(n, c.name)
	}
	n = append(n, "packets", "bytes")
	if l.flows {
		n = append(n, "flows")
	}
	return append(n, "stamp_inserted", "stamp_updated")
}

// primaryKey lists the primary key columns of a table Flowline creates.
func (l layout) primaryKey() []string {
	var pk []string
	if l.stampFirst {
		pk = append(pk, "stamp_inserted")
	}
	for _, c := range l.keys {
		if c.name == "tcp_flags" {
			continue // OR-ed, not a key (pmacct's v9 key leaves it out too)
		}
		pk = append(pk, c.name)
	}
	if !l.stampFirst {
		pk = append(pk, "stamp_inserted")
	}
	return pk
}

// createTable is the CREATE TABLE of the hot acct table (qtable is the
// quoted, qualified name): pmacct's types, and BIGINT counters so that a
// busy key cannot overflow packets.
func (l layout) createTable(qtable string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", qtable)
	for _, c := range l.keys {
		fmt.Fprintf(&b, "  %s %s,\n", c.name, c.typ)
	}
	b.WriteString("  packets BIGINT UNSIGNED NOT NULL,\n  bytes BIGINT UNSIGNED NOT NULL,\n")
	if l.flows {
		b.WriteString("  flows BIGINT UNSIGNED NOT NULL,\n")
	}
	b.WriteString("  stamp_inserted DATETIME NOT NULL,\n  stamp_updated DATETIME,\n")
	fmt.Fprintf(&b, "  PRIMARY KEY (%s)\n) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin", strings.Join(l.primaryKey(), ", "))
	return b.String()
}

// checkTable compares the table's columns with the layout and says exactly
// what is missing; extra columns must have defaults (they are not written).
func (l layout) checkTable(ctx context.Context, db *sql.DB, database, table string) (exists bool, err error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, IS_NULLABLE, COLUMN_DEFAULT IS NULL, EXTRA
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, database, table)
	if err != nil {
		return false, fmt.Errorf("reading the columns of %s.%s: %w", database, table, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	var noDefault []string
	for rows.Next() {
		var name, nullable, extra string
		var noDef bool
		if err := rows.Scan(&name, &nullable, &noDef, &extra); err != nil {
			return false, fmt.Errorf("reading the columns of %s.%s: %w", database, table, err)
		}
		name = strings.ToLower(name)
		have[name] = true
		if nullable == "NO" && noDef && !strings.Contains(strings.ToLower(extra), "auto_increment") {
			noDefault = append(noDefault, name)
		}
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("reading the columns of %s.%s: %w", database, table, err)
	}
	if len(have) == 0 {
		return false, nil
	}
	want := l.names()
	var missing []string
	for _, n := range want {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	var extra []string
	for _, n := range noDefault {
		if !slices.Contains(want, n) {
			extra = append(extra, n)
		}
	}
	slices.Sort(extra)
	switch {
	case len(missing) > 0:
		return true, fmt.Errorf("table %s.%s does not match the primitives: missing column(s) %s; alter the table, drop it and set create_table = true, or change primitives/optimize_clauses",
			database, table, strings.Join(missing, ", "))
	case len(extra) > 0:
		return true, fmt.Errorf("table %s.%s does not match the primitives: column(s) %s have no default and no primitive fills them; add them to primitives or set optimize_clauses = false",
			database, table, strings.Join(extra, ", "))
	}
	return true, nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// protoCase is the SQL expression that turns a numeric protocol column back
// into pmacct's name.
func protoCase(col string) string {
	var b strings.Builder
	b.WriteString("CASE " + col)
	for i, n := range pmacct.ProtoNames {
		if n != "" {
			fmt.Fprintf(&b, " WHEN %d THEN '%s'", i, n)
		}
	}
	b.WriteString(" ELSE CAST(" + col + " AS CHAR) END")
	return b.String()
}
