package duckdb

import (
	"context"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	ddb "github.com/duckdb/duckdb-go/v2"
)

// Result is a query's answer: column names and types, and rows of values in
// display form (addresses and MACs as text, timestamps as
// "2006-01-02 15:04:05" in UTC, integers of any size as numbers).
// Truncated says the answer stopped at the store's row limit.
type Result struct {
	Columns   []string `json:"columns"`
	Types     []string `json:"types"`
	Rows      [][]any  `json:"rows"`
	Truncated bool     `json:"truncated,omitempty"`
}

// ErrNotReadOnly rejects a statement that is not a query.
var ErrNotReadOnly = errors.New("only one read-only query (SELECT, WITH, FROM, VALUES, TABLE, DESCRIBE, SHOW, SUMMARIZE) is allowed")

// Default query limits (outputs.duckdb query_timeout and query_max_rows).
const (
	DefaultQueryTimeout = 60 * time.Second
	DefaultQueryMaxRows = 100_000
)

// queryKeywords are the first words a query may start with. The statement
// type alone is not enough: DuckDB plans PRAGMA calls as SELECTs.
var queryKeywords = map[string]bool{
	"SELECT": true, "WITH": true, "FROM": true, "VALUES": true, "TABLE": true,
	"DESCRIBE": true, "SHOW": true, "SUMMARIZE": true, "(": true,
}

// leadingKeyword is the statement's first word in upper case (or "(" for a
// parenthesized query), after white space and comments.
func leadingKeyword(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n\f\v")
		switch {
		case strings.HasPrefix(q, "--"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return ""
			}
			q = q[i+1:]
			continue
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q[2:], "*/")
			if i < 0 {
				return ""
			}
			q = q[i+4:]
			continue
		case strings.HasPrefix(q, "("):
			return "("
		}
		end := strings.IndexFunc(q, func(r rune) bool {
			return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		})
		if end < 0 {
			end = len(q)
		}
		return strings.ToUpper(q[:end])
	}
}

// checkQuery refuses, before DuckDB sees it, a statement that does not
// start like a query, naming what it starts with.
func checkQuery(q string) error {
	kw := leadingKeyword(q)
	if !queryKeywords[kw] {
		if kw == "" {
			return ErrNotReadOnly
		}
		return fmt.Errorf("%s refused: %w", kw, ErrNotReadOnly)
	}
	return nil
}

// Query runs one read-only SQL statement over the store and its views, in
// the store's sandbox: DuckDB reads no file outside the store's directories
// (see Open), the statement must be a single query, it is interrupted after
// the query timeout and its answer stops at the row limit (Truncated).
func (s *Store) Query(ctx context.Context, q string) (*Result, error) {
	if err := checkQuery(q); err != nil {
		return nil, err
	}
	timeout := s.opt.QueryTimeout
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	maxRows := s.opt.QueryMaxRows
	if maxRows <= 0 {
		maxRows = DefaultQueryMaxRows
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := s.query(ctx, q, maxRows)
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return nil, fmt.Errorf("query interrupted after %s (outputs.duckdb query_timeout): %w", timeout, err)
	}
	return res, err
}

func (s *Store) query(ctx context.Context, q string, maxRows int) (*Result, error) {
	if s.opt.ReadOnly {
		// Temporary views live on this connection only.
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.conn == nil {
			return nil, errors.New("store closed")
		}
		return runQuery(ctx, s.conn.Raw, q, maxRows)
	}
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return runQuery(ctx, c.Raw, q, maxRows)
}

func runQuery(ctx context.Context, raw func(func(any) error) error, q string, maxRows int) (*Result, error) {
	var res *Result
	err := raw(func(dc any) error {
		conn := dc.(driver.Conn)
		// Prepare (without a context) refuses several statements at once.
		st, err := conn.Prepare(q)
		if err != nil {
			return err
		}
		defer st.Close()
		ds, ok := st.(*ddb.Stmt)
		if !ok {
			return errors.New("unexpected driver statement")
		}
		typ, err := ds.StatementType()
		if err != nil {
			return err
		}
		if typ != ddb.STATEMENT_TYPE_SELECT {
			return ErrNotReadOnly
		}
		rows, err := ds.QueryContext(ctx, nil)
		if err != nil {
			return err
		}
		defer rows.Close()
		res = &Result{Columns: rows.Columns(), Rows: [][]any{}}
		if ct, ok := rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
			for i := range res.Columns {
				res.Types = append(res.Types, ct.ColumnTypeDatabaseTypeName(i))
			}
		}
		for {
			if len(res.Rows) == maxRows {
				res.Truncated = true
				break
			}
			vals := make([]driver.Value, len(res.Columns))
			if err := rows.Next(vals); err != nil {
				if err == io.EOF {
					break
				}
				return err
			}
			row := make([]any, len(vals))
			for i, v := range vals {
				if x, ok := v.(*big.Int); ok && i < len(res.Types) && res.Types[i] == "UHUGEINT" {
					row[i] = AddrString(x) // UHUGEINT columns are addresses
					continue
				}
				row[i] = display(v)
			}
			res.Rows = append(res.Rows, row)
		}
		return nil
	})
	return res, err
}

// display turns a driver value into its display form.
func display(v any) any {
	switch x := v.(type) {
	case []byte:
		if len(x) == 6 {
			return net.HardwareAddr(x).String()
		}
		return hex.EncodeToString(x)
	case time.Time:
		return x.UTC().Format(time.DateTime)
	case *big.Int:
		return x
	case nil, bool, string, float32, float64, int, int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return x
	}
	return fmt.Sprint(v)
}

// Stats answers the storage-sizing questions.
type Stats struct {
	// Period is the stored time span in seconds: from the oldest
	// stamp_inserted to the newest stamp_updated.
	PeriodSeconds  float64 `json:"period_seconds"`
	First          string  `json:"first"`
	Last           string  `json:"last"`
	Flows          uint64  `json:"flows"`
	FlowsPerSecond float64 `json:"flows_per_second"`
	FlowsPerMinute float64 `json:"flows_per_minute"`
	FlowsPerHour   float64 `json:"flows_per_hour"`
	RowsPerDay     float64 `json:"rows_per_day"`

	HotRows                 uint64  `json:"hot_rows"`
	HotBytes                uint64  `json:"hot_bytes"`
	CompressedRows          uint64  `json:"compressed_rows"`
	CompressedBytes         uint64  `json:"compressed_bytes"`
	CompressedFiles         int     `json:"compressed_files"`
	RollupRows              uint64  `json:"rollup_rows"`
	RollupBytes             uint64  `json:"rollup_bytes"`
	BytesPerFlowHot         float64 `json:"bytes_per_flow_hot"`
	BytesPerFlowCompressed  float64 `json:"bytes_per_flow_compressed"`
	CompressionRatio        float64 `json:"compression_ratio"`
	ProjectedBytesPerDay    float64 `json:"projected_bytes_per_day"`
	ProjectedBytesPerMonth  float64 `json:"projected_bytes_per_month"`
	ProjectedBytesPerYear   float64 `json:"projected_bytes_per_year"`
	ProjectedBytesPer3Years float64 `json:"projected_bytes_per_3years"`
	// Uncompressed projections: every row kept in the hot table.
	ProjectedBytesPerDayUncompressed    float64 `json:"projected_bytes_per_day_uncompressed"`
	ProjectedBytesPerMonthUncompressed  float64 `json:"projected_bytes_per_month_uncompressed"`
	ProjectedBytesPerYearUncompressed   float64 `json:"projected_bytes_per_year_uncompressed"`
	ProjectedBytesPer3YearsUncompressed float64 `json:"projected_bytes_per_3years_uncompressed"`
}

// Stats measures the store. "Flows" are the stored rows' flows counter
// (exported flows, before aggregation); bytes per flow are bytes per stored
// row. Projections assume rows arrive at the average rate of the stored
// period and are stored as the life cycle stores them (compressed when a
// compressed size is known).
func (s *Store) Stats(ctx context.Context) (*Stats, error) {
	if err := s.Checkpoint(ctx); err != nil {
		s.log.Debug("checkpoint before stats", "err", err)
	}
	st := &Stats{}
	var hotFlows uint64
	var first, last *time.Time
	q := "SELECT count(*)::UBIGINT, coalesce(sum(flows), 0)::UBIGINT, min(stamp_inserted), max(stamp_updated) FROM ("
	parts := []string{}
	s.mu.Lock()
	tables := append([]*tableVersion{}, s.tables...)
	s.mu.Unlock()
	for _, t := range tables {
		parts = append(parts, "SELECT stamp_inserted, stamp_updated, flows FROM "+t.name)
	}
	var minT, maxT time.Time
	if len(parts) > 0 {
		var a, b any
		err := s.queryRow(ctx, q+unionAll(parts)+")", &st.HotRows, &hotFlows, &a, &b)
		if err != nil {
			return nil, err
		}
		if t, ok := a.(time.Time); ok {
			minT, first = t, &minT
		}
		if t, ok := b.(time.Time); ok {
			maxT, last = t, &maxT
		}
	}
	st.Flows = hotFlows
	s.mu.Lock()
	files := append([]fileEntry{}, s.files...)
	s.mu.Unlock()
	for _, f := range files {
		if f.tier != RawTier {
			st.RollupRows += f.rows
			st.RollupBytes += f.fileBytes
			continue
		}
		st.CompressedRows += f.rows
		st.CompressedBytes += f.fileBytes
		st.CompressedFiles++
		st.Flows += f.flows
		ps := time.UnixMicro(f.partStart).UTC()
		pe := time.UnixMicro(f.partEnd).UTC()
		if first == nil || ps.Before(*first) {
			minT, first = ps, &minT
		}
		if last == nil || pe.After(*last) {
			maxT, last = pe, &maxT
		}
	}
	// Raw files carry their partition; narrow to the stored stamps.
	if len(files) > 0 && st.CompressedRows > 0 {
		var a, b any
		if err := s.queryRow(ctx, "SELECT min(stamp_inserted), max(stamp_updated) FROM flows_all", &a, &b); err == nil {
			if t, ok := a.(time.Time); ok {
				minT, first = t, &minT
			}
			if t, ok := b.(time.Time); ok {
				maxT, last = t, &maxT
			}
		}
	}
	var err error
	st.HotBytes, err = s.hotBytes(ctx)
	if err != nil {
		return nil, err
	}
	if first != nil && last != nil {
		st.First, st.Last = first.Format(time.DateTime), last.Format(time.DateTime)
		st.PeriodSeconds = max(last.Sub(*first).Seconds(), 1)
	}
	rows := st.HotRows + st.CompressedRows
	if st.PeriodSeconds > 0 {
		st.FlowsPerSecond = float64(st.Flows) / st.PeriodSeconds
		st.FlowsPerMinute = st.FlowsPerSecond * 60
		st.FlowsPerHour = st.FlowsPerSecond * 3600
		st.RowsPerDay = float64(rows) / st.PeriodSeconds * 86400
	}
	if st.HotRows > 0 {
		st.BytesPerFlowHot = float64(st.HotBytes) / float64(st.HotRows)
	}
	if st.CompressedRows > 0 {
		st.BytesPerFlowCompressed = float64(st.CompressedBytes) / float64(st.CompressedRows)
	}
	if st.BytesPerFlowHot > 0 && st.BytesPerFlowCompressed > 0 {
		st.CompressionRatio = st.BytesPerFlowHot / st.BytesPerFlowCompressed
	}
	hot := st.BytesPerFlowHot
	stored := st.BytesPerFlowCompressed
	if stored == 0 {
		stored = hot
	}
	if hot == 0 {
		hot = stored
	}
	day := st.RowsPerDay
	st.ProjectedBytesPerDay = day * stored
	st.ProjectedBytesPerMonth = day * 30 * stored
	st.ProjectedBytesPerYear = day * 365 * stored
	st.ProjectedBytesPer3Years = day * 3 * 365 * stored
	st.ProjectedBytesPerDayUncompressed = day * hot
	st.ProjectedBytesPerMonthUncompressed = day * 30 * hot
	st.ProjectedBytesPerYearUncompressed = day * 365 * hot
	st.ProjectedBytesPer3YearsUncompressed = day * 3 * 365 * hot
	return st, nil
}

func unionAll(parts []string) string {
	out := ""
	for i, p := range parts {
		if i > 0 {
			out += " UNION ALL "
		}
		out += p
	}
	return out
}

// queryRow runs a query on the right connection for the mode.
func (s *Store) queryRow(ctx context.Context, q string, dest ...any) error {
	if s.opt.ReadOnly {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.conn.QueryRowContext(ctx, q).Scan(dest...)
	}
	return s.db.QueryRowContext(ctx, q).Scan(dest...)
}

// hotBytes is the DuckDB file's used blocks plus its write-ahead log.
func (s *Store) hotBytes(ctx context.Context) (uint64, error) {
	var used, size int64
	if err := s.queryRow(ctx, "SELECT used_blocks, block_size FROM pragma_database_size() WHERE database_name = current_database()", &used, &size); err != nil {
		return 0, err
	}
	n := uint64(used * size)
	if st, err := os.Stat(s.opt.Path + ".wal"); err == nil {
		n += uint64(st.Size())
	}
	return n, nil
}
