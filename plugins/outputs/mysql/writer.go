package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/flowline/flowline/core"
)

// tuple is one formatted row in writeTx's arena.
type tuple struct {
	r          *row
	start, end int
}

// A refresh gathers until no batch came for linger, at most maxLinger.
const (
	linger    = 100 * time.Millisecond
	maxLinger = time.Second
)

// Backoff bounds of the flusher's retries.
const (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// flusher writes the buffer to the database until Close; see the package
// comment for the guarantees.
func (o *MySQL) flusher() {
	defer close(o.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.mu.Lock()
	o.cancelRun = cancel
	o.mu.Unlock()
	backoff := minBackoff
	stopping := false
	failed := false // the head group's last attempt failed: check the ledger first
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	wait := func(d time.Duration) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-o.stop:
			stopping = true
		case <-ctx.Done():
		}
	}
	for ctx.Err() == nil {
		if !stopping {
			select {
			case <-o.stop:
				stopping = true
			default:
			}
		}
		if stopping && o.buf.Empty() {
			return
		}
		if err := o.ensureReady(ctx); err != nil {
			o.m.retries.Inc()
			o.errLog.Log(slog.LevelWarn, "database not ready; rows stay buffered", "retry_in", backoff, "err", err)
			wait(backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		// Let a refresh that is still arriving (the aggregate emits it in
		// batches) gather, so that it goes in one sorted transaction.
		for lingered := time.Duration(0); !stopping && lingered < maxLinger && o.buf.QuietFor() < linger; lingered += linger / 4 {
			time.Sleep(linger / 4)
		}
		group := o.buf.PeekReadable(o.TransactionRows, func(n int, err error) {
			o.log.Error("spool file unreadable: set aside as *.bad, its rows are lost", "rows", n, "err", err)
			o.m.dropped.Add(float64(n))
		})
		if len(group) == 0 {
			if stopping {
				return
			}
			select {
			case <-o.buf.Notify():
			case <-tick.C:
			case <-o.stop:
				stopping = true
			}
			continue
		}
		last := group[len(group)-1].Seq
		if failed {
			done, err := o.ledgerHas(ctx, last)
			if err != nil {
				// Without the ledger's answer a write could count twice: wait.
				if isConnErr(err) {
					o.mu.Lock()
					o.ready = false
					o.mu.Unlock()
				}
				o.m.retries.Inc()
				o.errLog.Log(slog.LevelWarn, "cannot read the ledger; rows stay buffered", "retry_in", backoff, "err", err)
				wait(backoff)
				backoff = min(2*backoff, maxBackoff)
				continue
			}
			if done {
				// The previous commit went through although its answer was lost.
				o.finish(group, false)
				failed = false
				continue
			}
		}
		if err := o.writeGroup(ctx, group, last); err != nil {
			failed = true
			o.m.retries.Inc()
			o.errLog.Log(slog.LevelWarn, "write failed; rows stay buffered and are retried", "rows", rowsOf(group), "retry_in", backoff, "err", err)
			if isConnErr(err) {
				o.mu.Lock()
				o.ready = false // check the server again (it may have lost the table)
				o.mu.Unlock()
			}
			wait(backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		failed = false
		backoff = minBackoff
		o.finish(group, true)
	}
}

func (o *MySQL) finish(group []*chunk, written bool) {
	o.buf.Commit(group)
	o.mu.Lock()
	o.committed = group[len(group)-1].Seq
	o.mu.Unlock()
	if written {
		o.m.written.Add(float64(rowsOf(group)))
		o.m.transactions.Inc()
	}
	o.updateGauges()
}

func rowsOf(group []*chunk) int {
	n := 0
	for _, c := range group {
		n += c.N
	}
	return n
}

func (o *MySQL) ensureReady(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ready {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, time.Duration(o.Timeout))
	defer cancel()
	if err := o.setupLocked(sctx); err != nil {
		return err
	}
	o.buf.DropThrough(o.committed)
	return nil
}

// ledgerHas reports whether the ledger says batch seq was committed.
func (o *MySQL) ledgerHas(ctx context.Context, seq uint64) (bool, error) {
	qctx, cancel := context.WithTimeout(ctx, time.Duration(o.Timeout))
	defer cancel()
	var got uint64
	err := o.db.QueryRowContext(qctx, "SELECT seq FROM "+o.qtable("flowline_ledger")+" WHERE name = ?", o.ledgerName).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // nothing committed yet
	}
	if err != nil {
		return false, err
	}
	return got >= seq, nil
}

// isConnErr reports errors after which the server must be checked again.
func isConnErr(err error) bool {
	var me *driver.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1146 || me.Number == 1049 // table or database gone
	}
	return true
}

// txMark is what a transaction records besides the rows: the ledger's
// sequence of the buffer's last chunk, or, for a batch that bypassed the
// buffer, its origin (writer and sequence) in flowline_origins.
type txMark struct {
	ledger uint64
	origin *core.Origin
}

// mark records m in tx.
func (o *MySQL) mark(ctx context.Context, tx *sql.Tx, m txMark) error {
	if m.origin != nil {
		_, err := tx.ExecContext(ctx, "INSERT INTO "+o.qtable("flowline_origins")+" (writer, seq) VALUES (?, ?) ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq))",
			m.origin.Writer, m.origin.Seq)
		return err
	}
	_, err := tx.ExecContext(ctx, o.ledgerSQL(), o.ledgerName, m.ledger)
	return err
}

// writeOrigin writes the rows of a batch from a source that redelivers
// (inputs.amqp) at once, in one transaction with its origin, bypassing the
// buffer: the source holds the batch while the database is away, and the
// batch is acknowledged only once committed. A batch at or below its
// writer's stored sequence was committed before and is skipped.
func (o *MySQL) writeOrigin(ctx context.Context, rows []row, origin core.Origin) error {
	o.txMu.Lock()
	defer o.txMu.Unlock()
	if err := o.ensureReady(ctx); err != nil {
		return err
	}
	o.mu.Lock()
	last, seen := o.origins[origin.Writer]
	o.mu.Unlock()
	if seen && origin.Seq <= last {
		o.m.redelivered.Inc()
		return nil
	}
	err := o.writeGroupMark(ctx, []*chunk{{Items: rows, N: len(rows)}}, txMark{origin: &origin})
	if err != nil {
		if isConnErr(err) {
			o.mu.Lock()
			o.ready = false
			o.mu.Unlock()
		}
		return err
	}
	o.mu.Lock()
	o.origins[origin.Writer] = origin.Seq
	o.mu.Unlock()
	o.m.written.Add(float64(len(rows)))
	o.m.transactions.Inc()
	return nil
}

// writeGroup writes the chunks in one transaction that also moves the ledger
// to last.
func (o *MySQL) writeGroup(ctx context.Context, group []*chunk, last uint64) error {
	o.txMu.Lock()
	defer o.txMu.Unlock()
	return o.writeGroupMark(ctx, group, txMark{ledger: last})
}

func (o *MySQL) writeGroupMark(ctx context.Context, group []*chunk, last txMark) error {
	tctx, cancel := context.WithTimeout(ctx, time.Duration(o.Timeout)+time.Duration(rowsOf(group))*50*time.Microsecond)
	defer cancel()
	upsert := !o.DontTryUpdate
	err := o.writeTx(tctx, group, last, upsert)
	var me *driver.MySQLError
	if err != nil && !upsert && errors.As(err, &me) && me.Number == 1062 {
		// dont_try_update met a bin that already has rows (refresh shorter
		// than history): redo the transaction as an update rather than lose it.
		o.m.duplicates.Inc()
		o.errLog.Log(slog.LevelWarn, "dont_try_update: a key and bin was already written; falling back to updates (set refresh equal to history)")
		err = o.writeTx(tctx, group, last, true)
	}
	return err
}

// sorted returns the group's rows in the primary key's order: they then
// append to the index pages in sequence (pages fill up instead of splitting
// in half), which makes the upsert faster and the table smaller.
func (o *MySQL) sorted(group []*chunk) []tuple {
	arena := o.tupBuf[:0]
	tups := o.tups[:0]
	for _, c := range group {
		for i := range c.Items {
			start := len(arena)
			arena = o.lay.appendSortKey(arena, &c.Items[i])
			tups = append(tups, tuple{r: &c.Items[i], start: start, end: len(arena)})
		}
	}
	slices.SortFunc(tups, func(a, b tuple) int {
		return bytes.Compare(arena[a.start:a.end], arena[b.start:b.end])
	})
	o.tupBuf, o.tups = arena[:0], tups
	return tups
}

func (o *MySQL) writeTx(ctx context.Context, group []*chunk, last txMark, upsert bool) error {
	tups := o.sorted(group)
	defer func() { clear(o.tups); o.tups = o.tups[:0] }()
	if o.LoadData && !o.noLoad.Load() {
		err := o.loadTx(ctx, tups, last, upsert)
		var me *driver.MySQLError
		refused := errors.As(err, &me) && (me.Number == 1148 || me.Number == 3948 || me.Number == 4166)
		if err == nil || !refused && !strings.Contains(strings.ToLower(err.Error()), "local infile") {
			return err
		}
		// The server (or its settings) refuses LOAD DATA LOCAL: use
		// multi-row INSERTs from now on.
		o.noLoad.Store(true)
		o.log.Warn("the server refuses LOAD DATA LOCAL INFILE (local_infile = OFF?): writing with multi-row INSERTs, which is slower", "err", err)
	}
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	head := o.insertHead()
	tail := o.insertTail(upsert)
	stmt := append(o.stmtBuf[:0], head...)
	rowsIn := 0
	flush := func() error {
		if rowsIn == 0 {
			return nil
		}
		stmt = append(stmt, tail...)
		_, err := tx.ExecContext(ctx, string(stmt))
		stmt, rowsIn = append(stmt[:0], head...), 0
		return err
	}
	for _, t := range tups {
		if rowsIn > 0 {
			stmt = append(stmt, ',')
		}
		stmt = o.appendValues(stmt, t.r)
		rowsIn++
		if len(stmt)+len(tail) > o.stmtMax-1024 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	o.stmtBuf = stmt[:0]
	if err := o.mark(ctx, tx, last); err != nil {
		return err
	}
	return tx.Commit()
}

func (o *MySQL) ledgerSQL() string {
	return "INSERT INTO " + o.qtable("flowline_ledger") + " (name, seq) VALUES (?, ?) ON DUPLICATE KEY UPDATE seq = VALUES(seq)"
}

// loadTx writes the rows with LOAD DATA LOCAL INFILE into a temporary table
// of the connection, then one INSERT ... SELECT ... ON DUPLICATE KEY UPDATE
// into the table, in one transaction with the ledger: the server parses
// tab-separated values instead of SQL, about 1.5 times as fast.
func (o *MySQL) loadTx(ctx context.Context, tups []tuple, last txMark, upsert bool) error {
	data := o.loadBuf[:0]
	for _, t := range tups {
		data = o.appendTSV(data, t.r)
	}
	o.loadBuf = data
	conn, err := o.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tmp := o.qtable("flowline_load")
	if _, err := conn.ExecContext(ctx, "DROP TEMPORARY TABLE IF EXISTS "+tmp); err != nil {
		return err
	}
	// No key: rows keep the sorted order they are loaded in.
	if _, err := conn.ExecContext(ctx, "CREATE TEMPORARY TABLE "+tmp+" ENGINE=InnoDB SELECT "+joinNames(o.lay.names())+" FROM "+o.qtable(o.Table)+" LIMIT 0"); err != nil {
		return err
	}
	defer conn.ExecContext(context.Background(), "DROP TEMPORARY TABLE IF EXISTS "+tmp)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	o.loadData.Store(&data)
	var cols []string
	for _, c := range o.lay.keys {
		cols = append(cols, c.name)
	}
	cols = append(cols, "packets", "bytes")
	if o.lay.flows {
		cols = append(cols, "flows")
	}
	cols = append(cols, "@si", "@su")
	if _, err := tx.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+o.readerName+"' INTO TABLE "+tmp+
		" CHARACTER SET ascii FIELDS TERMINATED BY '\\t' ESCAPED BY '' LINES TERMINATED BY '\\n' ("+strings.Join(cols, ", ")+
		") SET stamp_inserted = FROM_UNIXTIME(@si), stamp_updated = FROM_UNIXTIME(@su)"); err != nil {
		return err
	}
	q := "INSERT INTO " + o.qtable(o.Table) + " (" + joinNames(o.lay.names()) + ") SELECT " + joinNames(o.lay.names()) + " FROM " + tmp
	if upsert {
		q += o.addClauseLatest(o.Table, o.lay.flows, hasFlags(o.lay))
	}
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return err
	}
	if err := o.mark(ctx, tx, last); err != nil {
		return err
	}
	return tx.Commit()
}

// addClauseLatest is insertTail for INSERT ... SELECT (the target's columns
// qualified); stamp_updated takes the refresh's time as pmacct sets it.
func (o *MySQL) addClauseLatest(t string, flows, flags bool) string {
	q := o.qtable(t) + "."
	s := " ON DUPLICATE KEY UPDATE " + q + "packets=" + q + "packets+VALUES(packets), " + q + "bytes=" + q + "bytes+VALUES(bytes)"
	if flows {
		s += ", " + q + "flows=" + q + "flows+VALUES(flows)"
	}
	if flags {
		s += ", " + q + "tcp_flags=" + q + "tcp_flags|VALUES(tcp_flags)"
	}
	return s + ", " + q + "stamp_updated=VALUES(stamp_updated)"
}

// appendTSV appends one row as LOAD DATA reads it: the values tab-separated
// (text without quotes: addresses, MACs and protocol names need no
// escaping), the stamps as Unix seconds, a newline.
func (o *MySQL) appendTSV(b []byte, r *row) []byte {
	for _, c := range o.lay.keys {
		start := len(b)
		b = c.appendValue(b, r)
		if c.text && len(b)-start >= 2 {
			copy(b[start:], b[start+1:len(b)-1])
			b = b[:len(b)-2]
		}
		b = append(b, '\t')
	}
	b = strconv.AppendUint(b, r.Packets, 10)
	b = append(b, '\t')
	b = strconv.AppendUint(b, r.Bytes, 10)
	if o.lay.flows {
		b = append(b, '\t')
		b = strconv.AppendUint(b, r.Flows, 10)
	}
	b = append(b, '\t')
	b = strconv.AppendInt(b, r.Inserted, 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, r.Updated, 10)
	return append(b, '\n')
}

func (o *MySQL) insertHead() string {
	if o.headSQL == "" {
		o.headSQL = "INSERT INTO " + o.qtable(o.Table) + " (" + joinNames(o.lay.names()) + ") VALUES "
	}
	return o.headSQL
}

// insertTail is pmacct's update semantics: counters add, tcp_flags OR,
// stamp_updated moves to this refresh.
func (o *MySQL) insertTail(upsert bool) string {
	if !upsert {
		return ""
	}
	s := " ON DUPLICATE KEY UPDATE packets=packets+VALUES(packets), bytes=bytes+VALUES(bytes)"
	if o.lay.flows {
		s += ", flows=flows+VALUES(flows)"
	}
	for _, c := range o.lay.keys {
		if c.name == "tcp_flags" {
			s += ", tcp_flags=tcp_flags|VALUES(tcp_flags)"
		}
	}
	return s + ", stamp_updated=VALUES(stamp_updated)"
}

func joinNames(n []string) string {
	s := ""
	for i, x := range n {
		if i > 0 {
			s += ", "
		}
		s += x
	}
	return s
}

// appendValues appends "(k1, ..., packets, bytes[, flows], stamps)".
func (o *MySQL) appendValues(b []byte, r *row) []byte {
	b = append(b, '(')
	for _, c := range o.lay.keys {
		b = c.appendValue(b, r)
		b = append(b, ',')
	}
	b = strconv.AppendUint(b, r.Packets, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, r.Bytes, 10)
	if o.lay.flows {
		b = append(b, ',')
		b = strconv.AppendUint(b, r.Flows, 10)
	}
	b = append(b, ",FROM_UNIXTIME("...)
	b = strconv.AppendInt(b, r.Inserted, 10)
	b = append(b, "),FROM_UNIXTIME("...)
	b = strconv.AppendInt(b, r.Updated, 10)
	return append(b, "))"...)
}
