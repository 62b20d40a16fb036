package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/lifecycle"
	"github.com/flowline/flowline/plugins/common/pmacct"
)

// The life cycle in MySQL (see README.md, "Life cycle"):
//
//   - <table>_archive holds rows older than compress_after in compact types
//     (VARBINARY(16) addresses, SMALLINT ports, TINYINT protocol) with InnoDB
//     page compression; its primary key starts with stamp_inserted. A row
//     that comes back for a bin already archived (a late refresh) is added to
//     the archived row.
//   - <table>_all is the view readers query: hot rows UNION ALL archived rows
//     in acct's form. Sum it; a key and bin may appear in both.
//   - <table>_<tier> (acct_1h, ...) holds each rollup: the archive's rows
//     re-aggregated into the tier's bins by the tier's primitives, once they
//     are older than the tier's after. A watermark per tier in
//     flowline_lifecycle says up to which stamp_inserted the archive was
//     rolled up; a move of late rows below the watermark rolls them up in
//     the same transaction, so every archived row is counted exactly once
//     in each tier.
//   - delete_after removes hot and archived rows older than it; a tier's
//     rows go after the tier's own delete_after (else the policy's).
//
// Every step runs in bounded batches, each one transaction: a crash between
// two batches leaves each row in exactly one place, counted once.

// moveBatch bounds the rows one move transaction takes (and locks).
const moveBatch = 5000

// rollupBatch bounds the archive rows one rollup transaction reads.
const rollupBatch = 100_000

func (o *MySQL) archiveName() string { return o.Table + "_archive" }
func (o *MySQL) viewName() string    { return o.Table + "_all" }
func (o *MySQL) tierName(r lifecycle.Rollup) string {
	return o.Table + "_" + r.Name()
}

// tierLayout is the key columns of a rollup tier.
func tierLayout(r lifecycle.Rollup, flows bool) layout {
	l, _ := newLayout(r.Primitives, true)
	l.flows = l.flows || flows
	return l
}

// setupLifecycle creates the archive, the tiers, the watermarks and the view.
func (o *MySQL) setupLifecycle(ctx context.Context) error {
	p := o.policy
	level := p.CompressLevel
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n  stamp_inserted DATETIME NOT NULL,\n", o.qtable(o.archiveName()))
	for _, c := range o.lay.keys {
		fmt.Fprintf(&b, "  %s %s,\n", c.name, c.archiveType)
	}
	b.WriteString("  packets BIGINT UNSIGNED NOT NULL,\n  bytes BIGINT UNSIGNED NOT NULL,\n")
	if o.lay.flows {
		b.WriteString("  flows BIGINT UNSIGNED NOT NULL,\n")
	}
	b.WriteString("  stamp_updated DATETIME,\n")
	var version string
	if err := o.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return o.classify(err)
	}
	// MariaDB's page compression; MySQL's equivalent is transparent page
	// compression (COMPRESSION='zlib', no level).
	compress := fmt.Sprintf(" PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=%d", level)
	if !strings.Contains(strings.ToLower(version), "mariadb") {
		compress = " COMPRESSION='zlib'"
	}
	fmt.Fprintf(&b, "  PRIMARY KEY (%s)\n) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin%s",
		strings.Join(archiveKey(o.lay), ", "), compress)
	stmts := []string{b.String(),
		"CREATE TABLE IF NOT EXISTS " + o.qtable("flowline_lifecycle") +
			" (name VARCHAR(191) NOT NULL PRIMARY KEY, done_until DATETIME NOT NULL) ENGINE=InnoDB"}
	for _, r := range p.Rollups {
		tl := tierLayout(r, o.lay.flows)
		stmts = append(stmts, tl.createTable(o.qtable(o.tierName(r)))+compress,
			"INSERT IGNORE INTO "+o.qtable("flowline_lifecycle")+" (name, done_until) VALUES ('"+o.tierName(r)+"', '1970-01-02 00:00:00')")
	}
	coll, err := o.textCollations(ctx)
	if err != nil {
		return o.classify(err)
	}
	stmts = append(stmts, o.viewSQL(coll))
	for _, q := range stmts {
		if _, err := o.db.ExecContext(ctx, q); err != nil {
			var me *driver.MySQLError
			if errors.As(err, &me) && me.Number != 1213 && me.Number != 1205 {
				// The server refuses the statement itself: retrying cannot help.
				return core.Permanent(fmt.Errorf("creating the life-cycle tables (%s): %w", firstLine(q), err))
			}
			return o.classify(fmt.Errorf("creating the life-cycle tables: %w", err))
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// archiveKey is the archive's primary key: stamp_inserted first.
func archiveKey(l layout) []string {
	k := []string{"stamp_inserted"}
	for _, c := range l.keys {
		if c.name != "tcp_flags" {
			k = append(k, c.name)
		}
	}
	return k
}

// textCollations reads the character set and collation of the hot table's
// text columns, so that the view converts archived values to the same.
func (o *MySQL) textCollations(ctx context.Context) (map[string][2]string, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CHARACTER_SET_NAME IS NOT NULL`, o.Database, o.Table)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s.%s: %w", o.Database, o.Table, err)
	}
	defer rows.Close()
	m := map[string][2]string{}
	for rows.Next() {
		var n, cs, coll string
		if err := rows.Scan(&n, &cs, &coll); err != nil {
			return nil, err
		}
		m[strings.ToLower(n)] = [2]string{cs, coll}
	}
	return m, rows.Err()
}

// viewSQL defines <table>_all over the hot table and the archive.
func (o *MySQL) viewSQL(coll map[string][2]string) string {
	names := o.lay.names()
	var conv []string
	for _, c := range o.lay.keys {
		expr := c.fromArchive
		if cc, ok := coll[c.name]; ok && c.text {
			expr = fmt.Sprintf("CONVERT(%s USING %s) COLLATE %s", expr, cc[0], cc[1])
		}
		conv = append(conv, expr+" AS "+c.name)
	}
	conv = append(conv, "packets", "bytes")
	if o.lay.flows {
		conv = append(conv, "flows")
	}
	conv = append(conv, "stamp_inserted", "stamp_updated")
	return fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT %s FROM %s UNION ALL SELECT %s FROM %s",
		o.qtable(o.viewName()), strings.Join(names, ", "), o.qtable(o.Table), strings.Join(conv, ", "), o.qtable(o.archiveName()))
}

// toArchive is the SELECT list that turns hot rows into archive rows.
func (o *MySQL) toArchive() (cols, sel string) {
	c := []string{"stamp_inserted"}
	s := []string{"stamp_inserted"}
	for _, k := range o.lay.keys {
		c = append(c, k.name)
		switch {
		case k.toArchive != "":
			s = append(s, k.toArchive)
		case strings.HasPrefix(k.archiveType, "VARBINARY(16)"):
			s = append(s, "INET6_ATON("+k.name+")")
		case strings.HasPrefix(k.archiveType, "BINARY(6)"):
			s = append(s, "UNHEX(REPLACE("+k.name+", ':', ''))")
		case k.name == "ip_proto":
			s = append(s, protoNumber(k.name))
		default:
			s = append(s, k.name)
		}
	}
	c = append(c, "packets", "bytes")
	s = append(s, "packets", "bytes")
	if o.lay.flows {
		c = append(c, "flows")
		s = append(s, "flows")
	}
	c = append(c, "stamp_updated")
	s = append(s, "stamp_updated")
	return strings.Join(c, ", "), strings.Join(s, ", ")
}

// protoNumber turns pmacct's protocol name back into its number.
func protoNumber(col string) string {
	var b strings.Builder
	b.WriteString("CASE " + col)
	for i, n := range pmacct.ProtoNames {
		if n != "" {
			fmt.Fprintf(&b, " WHEN '%s' THEN %d", n, i)
		}
	}
	b.WriteString(" ELSE CAST(" + col + " AS UNSIGNED) END")
	return b.String()
}

// addClause adds a duplicate's counters to the row of table t (qualified,
// since INSERT ... SELECT could otherwise read the SELECT's columns).
func (o *MySQL) addClause(t string, flows, flags bool) string {
	q := o.qtable(t) + "."
	s := " ON DUPLICATE KEY UPDATE " + q + "packets=" + q + "packets+VALUES(packets), " + q + "bytes=" + q + "bytes+VALUES(bytes)"
	if flows {
		s += ", " + q + "flows=" + q + "flows+VALUES(flows)"
	}
	if flags {
		s += ", " + q + "tcp_flags=" + q + "tcp_flags|VALUES(tcp_flags)"
	}
	return s + ", " + q + "stamp_updated=GREATEST(COALESCE(" + q + "stamp_updated, VALUES(stamp_updated)), COALESCE(VALUES(stamp_updated), " + q + "stamp_updated))"
}

func hasFlags(l layout) bool {
	for _, c := range l.keys {
		if c.name == "tcp_flags" {
			return true
		}
	}
	return false
}

// Compact runs one life-cycle pass as of now: move, roll up, delete. It is
// safe to repeat after a crash at any point.
func (o *MySQL) Compact(ctx context.Context, now time.Time, p lifecycle.Policy) (lifecycle.Report, error) {
	start := time.Now()
	var rep lifecycle.Report
	o.compactMu.Lock()
	defer o.compactMu.Unlock()
	o.mu.Lock()
	ready := o.ready && o.policy != nil
	o.mu.Unlock()
	if !ready {
		if o.policy == nil {
			return rep, errors.New("no [outputs.mysql.lifecycle] table configured")
		}
		return rep, errors.New("database not ready; the life-cycle pass waits")
	}
	cut := now.Add(-time.Duration(p.CompressAfter)).Unix()
	for ctx.Err() == nil {
		n, err := o.moveBatch(ctx, cut, p)
		rep.CompressedRows += n
		if err != nil {
			rep.Took = time.Since(start)
			return rep, fmt.Errorf("lifecycle: moving rows to %s: %w", o.archiveName(), err)
		}
		if n < moveBatch {
			break
		}
	}
	if rep.CompressedRows > 0 {
		rep.CompressedFiles = 1
	}
	for _, r := range p.Rollups {
		upTo := now.Add(-time.Duration(r.After)).Unix()
		for ctx.Err() == nil {
			n, more, err := o.rollupStep(ctx, r, upTo)
			rep.RolledUpRows += n
			if err != nil {
				rep.Took = time.Since(start)
				return rep, fmt.Errorf("lifecycle: rolling up into %s: %w", o.tierName(r), err)
			}
			if !more {
				break
			}
		}
	}
	type del struct {
		table string
		after core.Duration
	}
	dels := []del{{o.Table, p.DeleteAfter}, {o.archiveName(), p.DeleteAfter}}
	for _, r := range p.Rollups {
		dels = append(dels, del{o.tierName(r), p.TierDeleteAfter(r)})
	}
	for _, d := range dels {
		if d.after <= 0 {
			continue
		}
		dcut := now.Add(-time.Duration(d.after)).Unix()
		for _, t := range []string{d.table} {
			for ctx.Err() == nil {
				res, err := o.db.ExecContext(ctx, "DELETE FROM "+o.qtable(t)+" WHERE stamp_inserted < FROM_UNIXTIME(?) LIMIT 10000", dcut)
				if err != nil {
					rep.Took = time.Since(start)
					return rep, fmt.Errorf("lifecycle: deleting from %s: %w", t, err)
				}
				n, _ := res.RowsAffected()
				rep.DeletedRows += n
				if n < 10000 {
					break
				}
			}
		}
	}
	rep.Took = time.Since(start)
	return rep, ctx.Err()
}

// lockWatermarks reads (and locks, inside tx) every tier's watermark.
func (o *MySQL) lockWatermarks(ctx context.Context, tx *sql.Tx, p lifecycle.Policy) (map[string]int64, error) {
	w := map[string]int64{}
	if len(p.Rollups) == 0 {
		return w, nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT name, UNIX_TIMESTAMP(done_until) FROM "+o.qtable("flowline_lifecycle")+" WHERE name LIKE ? FOR UPDATE", o.Table+"\\_%")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		var t int64
		if err := rows.Scan(&n, &t); err != nil {
			return nil, err
		}
		w[n] = t
	}
	return w, rows.Err()
}

// moveBatch moves up to moveBatch hot rows older than cut into the archive
// (and, below a tier's watermark, into the tier) in one transaction.
func (o *MySQL) moveBatch(ctx context.Context, cut int64, p lifecycle.Policy) (int64, error) {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	marks, err := o.lockWatermarks(ctx, tx, p)
	if err != nil {
		return 0, err
	}
	pk := strings.Join(o.lay.primaryKey(), ", ")
	where := fmt.Sprintf(" FROM %s WHERE stamp_inserted < FROM_UNIXTIME(%d) ORDER BY %s LIMIT %d", o.qtable(o.Table), cut, pk, moveBatch)
	// Lock the batch first: no writer changes these rows until commit.
	var n int64
	rows, err := tx.QueryContext(ctx, "SELECT 1"+where+" FOR UPDATE")
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	cols, sel := o.toArchive()
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+o.qtable(o.archiveName())+" ("+cols+") SELECT * FROM (SELECT "+sel+where+") AS b"+
		o.addClause(o.archiveName(), o.lay.flows, hasFlags(o.lay))); err != nil {
		return 0, err
	}
	for _, r := range p.Rollups {
		w, ok := marks[o.tierName(r)]
		if !ok || w <= 0 {
			continue
		}
		q := o.rollupSQL(r, fmt.Sprintf("(SELECT * %s) AS b", where), fmt.Sprintf("stamp_inserted < FROM_UNIXTIME(%d)", w), false)
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return 0, err
		}
	}
	res, err := tx.ExecContext(ctx, "DELETE"+where)
	if err != nil {
		return 0, err
	}
	if d, _ := res.RowsAffected(); d != n {
		return 0, fmt.Errorf("moved %d rows but deleted %d; rolled back", n, d)
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return n, nil
}

// rollupSQL re-aggregates rows of from (hot rows, or archive rows when
// archive is true) matching cond into tier r.
func (o *MySQL) rollupSQL(r lifecycle.Rollup, from, cond string, archive bool) string {
	tl := tierLayout(r, o.lay.flows)
	h := int64(time.Duration(r.History) / time.Second)
	if h < 1 {
		h = 1
	}
	bin := fmt.Sprintf("FROM_UNIXTIME(UNIX_TIMESTAMP(stamp_inserted) DIV %d * %d)", h, h)
	var cols, sel, group []string
	for _, c := range tl.keys {
		cols = append(cols, c.name)
		expr := c.name
		if archive {
			if ac, ok := allColumns[c.name]; ok {
				expr = ac.fromArchive
			}
		}
		if c.name == "tcp_flags" {
			sel = append(sel, "BIT_OR(tcp_flags)")
			continue
		}
		sel = append(sel, expr)
		group = append(group, expr)
	}
	cols = append(cols, "packets", "bytes")
	sel = append(sel, "SUM(packets)", "SUM(bytes)")
	if tl.flows {
		cols = append(cols, "flows")
		if o.lay.flows {
			sel = append(sel, "SUM(flows)")
		} else {
			sel = append(sel, "0")
		}
	}
	cols = append(cols, "stamp_inserted", "stamp_updated")
	sel = append(sel, bin, "MAX(stamp_updated)")
	group = append(group, bin)
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s GROUP BY %s%s",
		o.qtable(o.tierName(r)), strings.Join(cols, ", "), strings.Join(sel, ", "), from, cond, strings.Join(group, ", "),
		o.addClause(o.tierName(r), tl.flows, hasFlags(tl)))
}

// rollupStep rolls up the next bounded slice of archive rows between the
// tier's watermark and upTo, and moves the watermark, in one transaction.
func (o *MySQL) rollupStep(ctx context.Context, r lifecycle.Rollup, upTo int64) (n int64, more bool, err error) {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	name := o.tierName(r)
	var w int64
	if err := tx.QueryRowContext(ctx, "SELECT UNIX_TIMESTAMP(done_until) FROM "+o.qtable("flowline_lifecycle")+" WHERE name = ? FOR UPDATE", name).Scan(&w); err != nil {
		return 0, false, fmt.Errorf("watermark of %s: %w", name, err)
	}
	if w >= upTo {
		return 0, false, nil
	}
	// The next slice ends at the stamp rollupBatch rows further, or at upTo.
	next := upTo
	var s sql.NullInt64
	err = tx.QueryRowContext(ctx, fmt.Sprintf("SELECT UNIX_TIMESTAMP(stamp_inserted) FROM %s WHERE stamp_inserted >= FROM_UNIXTIME(%d) ORDER BY stamp_inserted LIMIT 1 OFFSET %d",
		o.qtable(o.archiveName()), w, rollupBatch)).Scan(&s)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return 0, false, err
	case s.Valid:
		if s.Int64 <= w {
			s.Int64 = w + 1 // one bin holds more than a slice: take it whole
		}
		if s.Int64 < next {
			next, more = s.Int64, true
		}
	}
	cond := fmt.Sprintf("stamp_inserted >= FROM_UNIXTIME(%d) AND stamp_inserted < FROM_UNIXTIME(%d)", w, next)
	res, err := tx.ExecContext(ctx, o.rollupSQL(r, o.qtable(o.archiveName()), cond, true))
	if err != nil {
		return 0, false, err
	}
	n, _ = res.RowsAffected()
	if _, err := tx.ExecContext(ctx, "UPDATE "+o.qtable("flowline_lifecycle")+" SET done_until = FROM_UNIXTIME(?) WHERE name = ?", next, name); err != nil {
		return 0, false, err
	}
	return n, more, tx.Commit()
}
