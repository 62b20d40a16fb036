package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/lifecycle"
)

// RawTier is the tier name of the compressed raw rows.
const RawTier = "raw"

// quote makes a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// absPath is an archive file's path as the views read it.
func (s *Store) absPath(rel string) string {
	p := filepath.Join(s.opt.Archive, filepath.FromSlash(rel))
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// readParquet reads a list of archive files with the hot tables' columns
// (addresses joined from their two halves).
func (s *Store) readParquet(files []fileEntry) string {
	paths := make([]string, len(files))
	var mask core.Field
	uniform := true
	for i, f := range files {
		paths[i] = quote(s.absPath(f.path))
		mask |= f.mask
		uniform = uniform && f.mask == files[0].mask && f.version == files[0].version
	}
	// Files of one schema (the raw log's segments) are bound by the first
	// one alone; union_by_name would have DuckDB open every file's footer
	// each time the views are rebuilt, thousands of segments an hour.
	opts := ", union_by_name = true"
	if uniform {
		opts = ""
	}
	return "SELECT " + fromFileSelect(columnsOf(mask)) + " FROM read_parquet([" + strings.Join(paths, ", ") + "]" + opts + ")"
}

// rollupMask is the schema mask of a tier's files: its primitives.
func rollupMask(r lifecycle.Rollup) core.Field {
	m, _ := core.PrimitiveMask(r.Primitives)
	return m & primitiveFields
}

// tierNames lists the rollup tiers: configured ones and those with files.
func (s *Store) tierNames() []string {
	set := map[string]bool{}
	for _, r := range s.opt.Rollups {
		set[r.Name()] = true
	}
	for _, f := range s.files {
		if f.tier != RawTier {
			set[f.tier] = true
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (s *Store) viewNames() []string {
	names := []string{"flows_all"}
	for _, t := range s.tierNames() {
		names = append(names, "flows_"+t)
	}
	return names
}

func dropViewsSQL(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "DROP VIEW IF EXISTS " + n
	}
	return out
}

// emptySelect has every column a store may have and no row: the view of a
// store that holds nothing yet, so that queries and `flowline top` answer
// with no rows rather than an error.
var emptySelect = func() string {
	var sel []string
	for _, c := range columnsOf(primitiveFields) {
		sel = append(sel, fmt.Sprintf("NULL::%s AS %s", c.typ, c.name))
	}
	return "SELECT " + strings.Join(sel, ", ") + " WHERE false"
}()

// unionByName joins SELECTs; an empty list gives emptySelect.
func unionByName(parts []string) string {
	if len(parts) == 0 {
		return emptySelect
	}
	return strings.Join(parts, "\nUNION ALL BY NAME\n")
}

func (s *Store) filesOf(tier string) []fileEntry {
	var out []fileEntry
	for _, f := range s.files {
		if f.tier == tier {
			out = append(out, f)
		}
	}
	return out
}

// viewSQL returns the SELECT of every view.
//
// flows_all is every hot table and every raw archive file. flows_<tier> is
// the tier's files plus, re-aggregated on the fly into the tier's bins and
// keys, the hot rows and the raw files not yet rolled into it: each view
// covers all stored time with the same totals.
func (s *Store) viewSQL() map[string]string {
	views := map[string]string{}
	var hot []string
	var hotMask core.Field
	for _, t := range s.tables {
		hot = append(hot, "SELECT * FROM "+t.name)
		hotMask |= t.mask
	}
	all := append([]string{}, hot...)
	if raw := s.filesOf(RawTier); len(raw) > 0 {
		all = append(all, s.readParquet(raw))
	}
	views["flows_all"] = unionByName(all)

	tiers := map[string]lifecycle.Rollup{}
	for _, r := range s.opt.Rollups {
		tiers[r.Name()] = r
	}
	for _, name := range s.tierNames() {
		var parts []string
		if files := s.filesOf(name); len(files) > 0 {
			parts = append(parts, s.readParquet(files))
		}
		if r, ok := tiers[name]; ok {
			src := append([]string{}, hot...)
			avail := hotMask
			var unrolled []fileEntry
			for _, f := range s.filesOf(RawTier) {
				if !s.rolled[name][f.path] {
					unrolled = append(unrolled, f)
					avail |= f.mask
				}
			}
			if len(unrolled) > 0 {
				src = append(src, s.readParquet(unrolled))
			}
			if len(src) > 0 {
				parts = append(parts, rollupSelect(r, unionByName(src), avail))
			}
		}
		views["flows_"+name] = unionByName(parts)
	}
	return views
}

// rollupSelect re-aggregates src (with the columns of avail) into the tier's
// bins and keys: packets, bytes and flows summed, tcpflags OR-ed,
// stamp_updated the latest.
func rollupSelect(r lifecycle.Rollup, src string, avail core.Field) string {
	us := time.Duration(r.History).Microseconds()
	sel := []string{
		fmt.Sprintf("make_timestamp((epoch_us(stamp_inserted) // %d) * %d) AS stamp_inserted", us, us),
		"max(stamp_updated) AS stamp_updated",
	}
	for _, name := range r.Primitives {
		c, ok := primitiveColumns[name]
		if !ok {
			continue // "flows": a counter, always kept
		}
		switch {
		case avail&c.field == 0:
			sel = append(sel, fmt.Sprintf("NULL::%s AS %s", c.typ, c.name))
		case c.kind == kTCPFlags:
			sel = append(sel, "bit_or(tcpflags) AS tcpflags")
		default:
			sel = append(sel, c.name)
		}
	}
	sel = append(sel, "sum(packets)::UBIGINT AS packets", "sum(bytes)::UBIGINT AS bytes", "sum(flows)::UBIGINT AS flows")
	return "SELECT " + strings.Join(sel, ", ") + "\nFROM (" + src + ")\nGROUP BY ALL"
}

// execer runs statements on a connection or a transaction.
type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// buildViews (re)creates the views and macros: persistent ones in a
// read-write store (part of the caller's transaction, if any), temporary
// ones in a read-only one.
func (s *Store) buildViews(ctx context.Context, e execer) error {
	temp := ""
	if s.opt.ReadOnly {
		temp = "TEMP "
	}
	views := s.viewSQL()
	names := make([]string, 0, len(views))
	for n := range views {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		q := "CREATE OR REPLACE " + temp + "VIEW " + n + " AS\n" + views[n]
		if _, err := e.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("view %s: %w", n, err)
		}
	}
	macros := []string{
		// ipv4('10.1.2.3') is the stored form of an IPv4 address, for filters.
		`ipv4(s) AS (65535::UHUGEINT << 32) | (split_part(s, '.', 1)::UTINYINT::UHUGEINT << 24) | (split_part(s, '.', 2)::UTINYINT::UHUGEINT << 16) | (split_part(s, '.', 3)::UTINYINT::UHUGEINT << 8) | split_part(s, '.', 4)::UTINYINT::UHUGEINT`,
	}
	for _, m := range macros {
		if _, err := e.ExecContext(ctx, "CREATE OR REPLACE "+temp+"MACRO "+m); err != nil {
			return fmt.Errorf("macro: %w", err)
		}
	}
	return nil
}
