package duckdb

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	ddb "github.com/duckdb/duckdb-go/v2"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/lifecycle"
)

// storeFormat is the value of flowline_meta.format: the layout of the
// bookkeeping tables and the archive.
const storeFormat = "flowline-store-1"

// ErrLocked reports that another process holds the store's file (DuckDB
// allows one read-write process per file): the CLI then asks the running
// collector over HTTP.
var ErrLocked = errors.New("the store is in use by another process")

// ErrNoStore reports that a read-only open found no store file.
var ErrNoStore = errors.New("no store yet")

// Options say where a store lives and how it partitions its archive.
type Options struct {
	// Path is the DuckDB file.
	Path string
	// Archive is the directory of the compressed Parquet files.
	Archive string
	// Partition is the time span of one archive file (default 1h).
	Partition time.Duration
	// ReadOnly opens the file for reading only (the CLI): nothing on disk
	// changes, views are built as temporary ones.
	ReadOnly bool
	// Rollups are the tiers views are built for.
	Rollups []lifecycle.Rollup
	// KeepSegments turns off the merge of the raw flow log's segments in
	// the life cycle's compress step.
	KeepSegments bool
	// Threads bounds DuckDB's worker threads (0: DuckDB's default).
	Threads int
	// MemoryLimit bounds DuckDB's memory in bytes (0: DuckDB's default, 80%
	// of the RAM).
	MemoryLimit int64
	// QueryTimeout interrupts a Query that runs longer (0: 60 s).
	QueryTimeout time.Duration
	// QueryMaxRows is the most rows a Query answers (0: 100,000).
	QueryMaxRows int
	Logger       *slog.Logger
}

// tableVersion is one hot table: the current one is named flows; when the
// primitive set changes it is renamed flows_v<version> and a new flows is
// created.
type tableVersion struct {
	version int
	name    string
	mask    core.Field
	cols    []column
}

// fileEntry is one archive file in the manifest.
type fileEntry struct {
	path      string // relative to the archive directory, with '/'
	tier      string // "raw" or a rollup tier name ("1h")
	version   int
	mask      core.Field // the columns the file holds (a schema mask)
	partStart int64      // Unix microseconds
	partEnd   int64
	rows      uint64
	flows     uint64
	packets   uint64
	bytes     uint64
	fileBytes uint64
}

// Store is an open Flowline store: the DuckDB file with its hot tables and
// bookkeeping, and the Parquet archive.
type Store struct {
	opt Options
	log *slog.Logger
	db  *sql.DB

	// mu serializes writes, compaction and schema changes; conn is the
	// connection they use (queries take other connections from db).
	mu   sync.Mutex
	conn *sql.Conn
	// gen counts table-version changes, so that a pass that began before
	// one does not commit over it.
	gen int
	// passMu runs one life-cycle pass at a time, on pconn. The manifest
	// (files, rolled, nextFile) changes only with both passMu and mu held.
	passMu sync.Mutex
	pconn  *sql.Conn
	tables []*tableVersion
	files  []fileEntry
	rolled map[string]map[string]bool // tier -> raw file paths rolled into it
	// nextFile numbers archive files; the raw flow log's writer takes
	// numbers outside a pass, hence its own lock, which also guards
	// reserved: files being written outside a pass (the raw flow log's
	// segments until they are listed), which reconcile leaves alone.
	nextFileMu sync.Mutex
	nextFile   int64
	reserved   map[string]bool

	app    *ddb.Appender
	appTab *tableVersion
	rw     rowWriter

	// origins is flowline_origins in memory: the highest sequence stored
	// per upstream writer (inputs.amqp's batches), for WriteFrom.
	origins map[string]uint64
}

var duckMagic = []byte("DUCK")

// Open opens (or, unless read-only, creates) the store. A file that is not a
// Flowline store, a corrupt one, a manifest entry whose file is missing or
// has the wrong size, and a file in the archive that Flowline did not write
// are errors that name the file. Read-write, it removes what a crash left:
// temporary files and archive files the manifest does not list.
func Open(ctx context.Context, opt Options) (*Store, error) {
	if opt.Partition <= 0 {
		opt.Partition = time.Hour
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{opt: opt, log: opt.Logger, rolled: map[string]map[string]bool{}}
	if err := checkHeader(opt.Path, opt.ReadOnly); err != nil {
		return nil, err
	}
	if !opt.ReadOnly {
		if err := os.MkdirAll(opt.Archive, 0o755); err != nil {
			return nil, err
		}
	}
	dsn := opt.Path + "?access_mode=read_write"
	if opt.ReadOnly {
		dsn = opt.Path + "?access_mode=read_only"
	}
	if opt.Threads > 0 {
		dsn += "&threads=" + strconv.Itoa(opt.Threads)
	}
	if opt.MemoryLimit > 0 {
		dsn += "&memory_limit=" + strconv.FormatInt(max(opt.MemoryLimit>>10, 1), 10) + "KiB"
	}
	db, err := sql.Open("duckdb", dsn)
	if err != nil {
		return nil, openError(opt.Path, err)
	}
	s.db = db
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, openError(opt.Path, err)
	}
	s.conn = conn
	if err := sandbox(ctx, conn, opt); err != nil {
		conn.Close()
		db.Close()
		return nil, err
	}
	if !opt.ReadOnly {
		if s.pconn, err = db.Conn(ctx); err != nil {
			conn.Close()
			db.Close()
			return nil, openError(opt.Path, err)
		}
	}
	if err := s.init(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// sandbox confines the database before anything else runs on it: DuckDB
// opens no file outside the store's own directories (the DuckDB file's and
// the archive), loads no extension and accepts no later change of its
// settings. Queries, the life cycle and the views all run inside it.
func sandbox(ctx context.Context, conn *sql.Conn, opt Options) error {
	var dirs []string
	for _, d := range []string{filepath.Dir(opt.Path), opt.Archive} {
		a, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		// A trailing separator, so that /data does not also allow /data2.
		dirs = append(dirs, quote(strings.TrimSuffix(a, string(filepath.Separator))+string(filepath.Separator)))
	}
	for _, q := range []string{
		"SET allowed_directories = [" + strings.Join(dirs, ", ") + "]",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET enable_external_access = false",
		"SET lock_configuration = true",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return core.Permanent(fmt.Errorf("%s: sandboxing the store: %s: %w", opt.Path, q, err))
		}
	}
	return nil
}

func openError(path string, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "Could not set lock") || strings.Contains(msg, "Conflicting lock") {
		return fmt.Errorf("%s: %w: %v", path, ErrLocked, err)
	}
	return core.Permanent(fmt.Errorf("%s: cannot open the store (corrupt, or not a DuckDB file? move it away to start afresh): %w", path, err))
}

// checkHeader rejects a file that is not a DuckDB database before DuckDB
// sees it.
func checkHeader(path string, readOnly bool) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if readOnly {
			return fmt.Errorf("%s: %w (has the collector run with this config?)", path, ErrNoStore)
		}
		return os.MkdirAll(filepath.Dir(path), 0o755)
	}
	if err != nil {
		return core.Permanent(err)
	}
	defer f.Close()
	head := make([]byte, 12)
	n, err := io.ReadFull(f, head)
	if n == 0 && err == io.EOF {
		return core.Permanent(fmt.Errorf("%s: an empty file where the store should be: remove it to start afresh", path))
	}
	if n < len(head) || !bytes.Equal(head[8:12], duckMagic) {
		return core.Permanent(fmt.Errorf("%s: not a DuckDB database (a foreign or corrupt file where the store should be): move it away or set outputs.duckdb.path", path))
	}
	return nil
}

func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	r, err := s.conn.ExecContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", firstLine(q), err)
	}
	return r, nil
}

func firstLine(q string) string {
	if i := strings.IndexByte(q, '\n'); i > 0 {
		q = q[:i]
	}
	if len(q) > 80 {
		q = q[:80] + "..."
	}
	return q
}

// init checks or creates the bookkeeping tables, loads the table versions
// and the manifest, reconciles the archive with it and builds the views.
func (s *Store) init(ctx context.Context) error {
	tables, err := s.tableNames(ctx)
	if err != nil {
		return core.Permanent(fmt.Errorf("%s: reading the catalog: %w", s.opt.Path, err))
	}
	if !tables["flowline_meta"] {
		if len(tables) > 0 {
			names := make([]string, 0, len(tables))
			for n := range tables {
				names = append(names, n)
			}
			sort.Strings(names)
			return core.Permanent(fmt.Errorf("%s: a DuckDB database that is not a Flowline store (tables %s): move it away or set outputs.duckdb.path", s.opt.Path, strings.Join(names, ", ")))
		}
		if s.opt.ReadOnly {
			return fmt.Errorf("%s: %w (the collector has not written to it)", s.opt.Path, ErrNoStore)
		}
		if err := s.create(ctx); err != nil {
			return err
		}
	}
	var format string
	if err := s.conn.QueryRowContext(ctx, "SELECT value FROM flowline_meta WHERE key = 'format'").Scan(&format); err != nil || format != storeFormat {
		return core.Permanent(fmt.Errorf("%s: flowline_meta.format = %q, want %q (a store of another Flowline version?): %v", s.opt.Path, format, storeFormat, err))
	}
	if err := s.load(ctx); err != nil {
		return err
	}
	if err := s.loadOrigins(ctx); err != nil {
		return err
	}
	if err := s.reconcile(); err != nil {
		return err
	}
	return s.buildViews(ctx, s.conn)
}

func (s *Store) tableNames(ctx context.Context) (map[string]bool, error) {
	rows, err := s.conn.QueryContext(ctx, "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

func (s *Store) create(ctx context.Context) error {
	for _, q := range []string{
		"BEGIN",
		"CREATE TABLE flowline_meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL)",
		"INSERT INTO flowline_meta VALUES ('format', '" + storeFormat + "'), ('next_file', '1')",
		"CREATE TABLE flowline_tables (version INTEGER NOT NULL, name VARCHAR NOT NULL, mask UBIGINT NOT NULL, primitives VARCHAR NOT NULL, created TIMESTAMP NOT NULL)",
		`CREATE TABLE flowline_files (path VARCHAR NOT NULL, tier VARCHAR NOT NULL, version INTEGER NOT NULL, mask UBIGINT NOT NULL,
			part_start TIMESTAMP NOT NULL, part_end TIMESTAMP NOT NULL, rows UBIGINT NOT NULL, flows UBIGINT NOT NULL,
			packets UBIGINT NOT NULL, bytes UBIGINT NOT NULL, file_bytes UBIGINT NOT NULL, created TIMESTAMP NOT NULL)`,
		"CREATE TABLE flowline_rolled (tier VARCHAR NOT NULL, path VARCHAR NOT NULL)",
		"COMMIT",
	} {
		if _, err := s.exec(ctx, q); err != nil {
			s.conn.ExecContext(ctx, "ROLLBACK")
			return err
		}
	}
	return nil
}

// load reads the table versions, the manifest and the file counter.
func (s *Store) load(ctx context.Context) error {
	s.tables = nil
	rows, err := s.conn.QueryContext(ctx, "SELECT version, name, mask FROM flowline_tables ORDER BY version")
	if err != nil {
		return err
	}
	for rows.Next() {
		var t tableVersion
		var mask uint64
		if err := rows.Scan(&t.version, &t.name, &mask); err != nil {
			rows.Close()
			return err
		}
		t.mask = core.Field(mask)
		t.cols = columnsOf(t.mask)
		s.tables = append(s.tables, &t)
	}
	rows.Close()
	var next string
	if err := s.conn.QueryRowContext(ctx, "SELECT value FROM flowline_meta WHERE key = 'next_file'").Scan(&next); err != nil {
		return err
	}
	n, _ := strconv.ParseInt(next, 10, 64)
	// Never backwards: files named since (written, not yet listed) keep
	// their numbers after a rolled-back step reloads the manifest.
	s.nextFileMu.Lock()
	s.nextFile = max(s.nextFile, n)
	s.nextFileMu.Unlock()
	return s.loadManifest(ctx, s.conn)
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func (s *Store) loadManifest(ctx context.Context, q querier) error {
	rows, err := q.QueryContext(ctx, `SELECT path, tier, version, mask, epoch_us(part_start), epoch_us(part_end), rows, flows, packets, bytes, file_bytes
		FROM flowline_files ORDER BY tier, part_start, path`)
	if err != nil {
		return err
	}
	var files []fileEntry
	for rows.Next() {
		var f fileEntry
		var mask uint64
		if err := rows.Scan(&f.path, &f.tier, &f.version, &mask, &f.partStart, &f.partEnd, &f.rows, &f.flows, &f.packets, &f.bytes, &f.fileBytes); err != nil {
			rows.Close()
			return err
		}
		f.mask = core.Field(mask)
		files = append(files, f)
	}
	rows.Close()
	rolled := map[string]map[string]bool{}
	rows, err = q.QueryContext(ctx, "SELECT tier, path FROM flowline_rolled")
	if err != nil {
		return err
	}
	for rows.Next() {
		var tier, path string
		if err := rows.Scan(&tier, &path); err != nil {
			rows.Close()
			return err
		}
		if rolled[tier] == nil {
			rolled[tier] = map[string]bool{}
		}
		rolled[tier][path] = true
	}
	rows.Close()
	s.files, s.rolled = files, rolled
	return nil
}

// archiveName is the pattern of the files Flowline writes into the archive:
// <tier>/v<version>/<partition start>_<number>.parquet.
var archiveName = regexp.MustCompile(`^(raw|[0-9]+(?:ms|[smhd]))/v[0-9]+/[0-9]{8}T[0-9]{4}Z_[0-9]{6,}\.parquet$`)

// reconcile compares the archive directory with the manifest: a listed file
// that is missing or has another size is an error naming it; a file that
// looks like Flowline's but is not listed (the orphan of a crash between
// rename and commit, or of a deletion between commit and unlink) is
// removed, as are temporary files; any other file is an error naming it.
func (s *Store) reconcile() error {
	listed := make(map[string]fileEntry, len(s.files))
	for _, f := range s.files {
		listed[f.path] = f
	}
	seen := map[string]bool{}
	err := filepath.WalkDir(s.opt.Archive, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == s.opt.Archive {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(s.opt.Archive, p)
		rel = filepath.ToSlash(rel)
		if f, ok := listed[rel]; ok {
			seen[rel] = true
			st, err := d.Info()
			if err != nil {
				return err
			}
			if uint64(st.Size()) != f.fileBytes {
				return core.Permanent(fmt.Errorf("%s: corrupt archive file: %d bytes, the manifest says %d", p, st.Size(), f.fileBytes))
			}
			return nil
		}
		if strings.HasSuffix(rel, ".tmp") && archiveName.MatchString(strings.TrimSuffix(rel, ".tmp")) || archiveName.MatchString(rel) {
			if s.opt.ReadOnly || s.isReserved(strings.TrimSuffix(rel, ".tmp")) {
				return nil
			}
			s.log.Warn("removing an archive file no manifest entry lists (left by an interrupted pass)", "file", p)
			return os.Remove(p)
		}
		return core.Permanent(fmt.Errorf("%s: a file Flowline did not write in the archive directory: move it away", p))
	})
	if err != nil {
		return err
	}
	for _, f := range s.files {
		if !seen[f.path] {
			return core.Permanent(fmt.Errorf("%s: archive file listed in the manifest is missing (%d rows lost)", filepath.Join(s.opt.Archive, f.path), f.rows))
		}
	}
	return nil
}

// reserve marks an archive file (by its final relative path; its .tmp too)
// as being written outside a pass: reconcile does not remove it.
func (s *Store) reserve(rel string) {
	s.nextFileMu.Lock()
	defer s.nextFileMu.Unlock()
	if s.reserved == nil {
		s.reserved = map[string]bool{}
	}
	s.reserved[rel] = true
}

// release ends a reservation (the file is listed, or removed).
func (s *Store) release(rel string) {
	s.nextFileMu.Lock()
	defer s.nextFileMu.Unlock()
	delete(s.reserved, rel)
}

func (s *Store) isReserved(rel string) bool {
	s.nextFileMu.Lock()
	defer s.nextFileMu.Unlock()
	return s.reserved[rel]
}

// Close closes the store.
func (s *Store) Close() error {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.pconn != nil {
		errs = append(errs, s.pconn.Close())
		s.pconn = nil
	}
	if s.app != nil {
		errs = append(errs, s.app.Close())
		s.app = nil
	}
	if s.conn != nil {
		if !s.opt.ReadOnly {
			_, _ = s.conn.ExecContext(context.Background(), "CHECKPOINT")
		}
		errs = append(errs, s.conn.Close())
		s.conn = nil
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
		s.db = nil
	}
	return errors.Join(errs...)
}

// current returns the hot table for schema mask, creating a new table
// version (and renaming the previous flows) when the primitive set changed.
func (s *Store) current(ctx context.Context, mask core.Field) (*tableVersion, error) {
	var cur *tableVersion
	if n := len(s.tables); n > 0 {
		cur = s.tables[n-1]
	}
	if cur != nil && cur.mask == mask {
		return cur, nil
	}
	if s.app != nil {
		s.app.Close()
		s.app, s.appTab = nil, nil
	}
	t := &tableVersion{version: 1, name: "flows", mask: mask, cols: columnsOf(mask)}
	if cur != nil {
		t.version = cur.version + 1
	}
	stmts := []string{"BEGIN"}
	if cur != nil {
		old := fmt.Sprintf("flows_v%d", cur.version)
		stmts = append(stmts, dropViewsSQL(s.viewNames())...)
		stmts = append(stmts, "ALTER TABLE flows RENAME TO "+old,
			fmt.Sprintf("UPDATE flowline_tables SET name = '%s' WHERE version = %d", old, cur.version))
	}
	stmts = append(stmts, createTableSQL("flows", t.cols),
		fmt.Sprintf("INSERT INTO flowline_tables VALUES (%d, 'flows', %d, '%s', now())", t.version, uint64(mask), strings.Join(primitiveNames(mask), ",")))
	for _, q := range stmts {
		if _, err := s.exec(ctx, q); err != nil {
			s.conn.ExecContext(ctx, "ROLLBACK")
			return nil, err
		}
	}
	if cur != nil {
		cur.name = fmt.Sprintf("flows_v%d", cur.version)
	}
	s.gen++
	s.tables = append(s.tables, t)
	if err := s.buildViews(ctx, s.conn); err != nil {
		s.conn.ExecContext(ctx, "ROLLBACK")
		s.tables = s.tables[:len(s.tables)-1]
		if cur != nil {
			cur.name = "flows"
		}
		return nil, err
	}
	if _, err := s.exec(ctx, "COMMIT"); err != nil {
		return nil, err
	}
	if cur != nil {
		s.log.Info("the primitive set changed: new table version", "old", cur.name, "primitives", strings.Join(primitiveNames(mask), ","))
	}
	return t, nil
}

// loadOrigins reads flowline_origins (created here for stores that predate
// it; a read-only store without it has none).
func (s *Store) loadOrigins(ctx context.Context) error {
	s.origins = map[string]uint64{}
	if !s.opt.ReadOnly {
		if _, err := s.exec(ctx, "CREATE TABLE IF NOT EXISTS flowline_origins (writer VARCHAR PRIMARY KEY, seq UBIGINT NOT NULL)"); err != nil {
			return err
		}
	}
	rows, err := s.conn.QueryContext(ctx, "SELECT writer, seq FROM flowline_origins")
	if err != nil {
		if s.opt.ReadOnly {
			return nil
		}
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var w string
		var seq uint64
		if err := rows.Scan(&w, &seq); err != nil {
			return err
		}
		s.origins[w] = seq
	}
	return rows.Err()
}

// Write stores every flow record of recs in one transaction: all or none.
func (s *Store) Write(ctx context.Context, recs []core.Record) (int, error) {
	return s.WriteFrom(ctx, recs, core.Origin{})
}

// WriteFrom is Write for a batch from a source that can redeliver it: when
// origin names a writer, a batch at or below the highest sequence stored for
// it was stored already and is skipped (skipped = true), and the new highest
// sequence is stored in the same transaction as the rows.
func (s *Store) WriteFrom(ctx context.Context, recs []core.Record, origin core.Origin) (n int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return 0, errors.New("store closed")
	}
	if origin.Writer == "" {
		return s.write(ctx, recs, nil)
	}
	if last, ok := s.origins[origin.Writer]; ok && origin.Seq <= last {
		return 0, ErrDuplicate
	}
	n, err = s.write(ctx, recs, &origin)
	if err == nil {
		s.origins[origin.Writer] = origin.Seq
	}
	return n, err
}

// ErrDuplicate says WriteFrom skipped a batch stored before.
var ErrDuplicate = errors.New("batch stored before (redelivered)")

// write appends the flow records of recs and, with an origin, moves its
// writer's sequence, all in one transaction. Called with s.mu held.
func (s *Store) write(ctx context.Context, recs []core.Record, origin *core.Origin) (int, error) {
	first := -1
	for i := range recs {
		if recs[i].Flags&core.FlagOptions == 0 {
			first = i
			break
		}
	}
	if first < 0 {
		if origin != nil {
			_, err := s.exec(ctx, "INSERT OR REPLACE INTO flowline_origins VALUES ("+quote(origin.Writer)+", "+strconv.FormatUint(origin.Seq, 10)+")")
			return 0, err
		}
		return 0, nil
	}
	mask := schemaOf(&recs[first])
	t, err := s.current(ctx, mask)
	if err != nil {
		return 0, err
	}
	if s.app == nil || s.appTab != t {
		if s.app != nil {
			s.app.Close()
		}
		err := s.conn.Raw(func(dc any) error {
			a, err := ddb.NewAppenderFromConn(dc.(driver.Conn), "", t.name)
			s.app = a
			return err
		})
		if err != nil {
			s.app = nil
			return 0, fmt.Errorf("appender: %w", err)
		}
		s.appTab = t
		s.rw = rowWriter{cols: t.cols}
	}
	s.rw.now = time.Now()
	// The appender's flush appends everything it buffers in one transaction
	// of its own, unless it flushed by itself on the way (at 204,800 rows):
	// larger batches get an explicit transaction around it.
	explicit := len(recs)-first >= appenderFlushRows || origin != nil
	if explicit {
		if _, err := s.exec(ctx, "BEGIN"); err != nil {
			return 0, err
		}
	}
	n := 0
	fail := func(err error) (int, error) {
		// Drop what the appender buffers, so that closing it flushes nothing.
		s.app.Clear()
		if explicit {
			s.conn.ExecContext(context.Background(), "ROLLBACK")
		}
		s.app.Close()
		s.app, s.appTab = nil, nil
		return 0, err
	}
	for i := first; i < len(recs); i++ {
		r := &recs[i]
		if r.Flags&core.FlagOptions != 0 {
			continue
		}
		if m := schemaOf(r); m != mask {
			return fail(core.Permanent(fmt.Errorf("a batch mixes records of primitive sets %v and %v", primitiveNames(mask), primitiveNames(m))))
		}
		if err := s.app.AppendRow(s.rw.row(r)...); err != nil {
			return fail(fmt.Errorf("append: %w", err))
		}
		n++
	}
	if err := s.app.Flush(); err != nil {
		return fail(fmt.Errorf("append: %w", err))
	}
	if origin != nil {
		if _, err := s.exec(ctx, "INSERT OR REPLACE INTO flowline_origins VALUES ("+quote(origin.Writer)+", "+strconv.FormatUint(origin.Seq, 10)+")"); err != nil {
			return fail(fmt.Errorf("origin: %w", err))
		}
	}
	if explicit {
		if _, err := s.exec(ctx, "COMMIT"); err != nil {
			return fail(err)
		}
	}
	return n, nil
}

// appenderFlushRows is below the row count at which DuckDB's appender
// flushes by itself (204,800): batches smaller than this are committed by
// the one flush at their end.
const appenderFlushRows = 100_000

// Checkpoint writes the WAL into the database file.
func (s *Store) Checkpoint(ctx context.Context) error {
	if s.opt.ReadOnly {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.exec(ctx, "CHECKPOINT")
	return err
}
