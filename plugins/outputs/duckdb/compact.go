package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/lifecycle"
)

// sortKeys is the order of the rows inside an archive file: the flow's
// identity first, destination side first (so one conversation's rows of every
// bin of the partition sit together, its key columns become long runs, and
// popular servers group their clients), then the time bin (small deltas).
// Measured in BenchmarkSortOrder against source-first and time-first orders.
var sortKeys = []string{"peer_src_ip", "dst_host", "dst_net", "dst_port", "proto", "src_host", "src_net", "src_port",
	"src_as", "dst_as", "in_iface", "out_iface", "src_mask", "dst_mask", "vlan", "tos", "src_mac", "dst_mac",
	"sampling_rate", "stamp_inserted", "tcpflags", "stamp_updated"}

// orderBy lists the sort keys present in a set of columns.
func orderBy(has func(string) bool) string {
	var keys []string
	for _, k := range sortKeys {
		if has(k) {
			keys = append(keys, k)
		}
	}
	return strings.Join(keys, ", ")
}

// fileOrderBy is orderBy over archive files' columns (an address sorts by
// its two halves).
func fileOrderBy(cols []column) string {
	var keys []string
	for _, k := range strings.Split(orderBy(colsHas(cols)), ", ") {
		if c, ok := primitiveColumns[k]; ok && c.isAddr() {
			keys = append(keys, k+"__hi", k+"__lo")
			continue
		}
		keys = append(keys, k)
	}
	return strings.Join(keys, ", ")
}

func colsHas(cols []column) func(string) bool {
	return func(n string) bool {
		for _, c := range cols {
			if c.name == n {
				return true
			}
		}
		return false
	}
}

func micros(t time.Time) int64 { return t.UnixMicro() }

// floorTo aligns us (Unix microseconds) down to a multiple of step.
func floorTo(us, step int64) int64 {
	f := us - us%step
	if us < 0 && us%step != 0 {
		f -= step
	}
	return f
}

// newFile is an archive file written to its temporary name, not yet listed.
type newFile struct {
	fileEntry
	abs string // final absolute path
}

// Compact runs one life-cycle pass as of now: compress, roll up, delete.
// Each step writes its files under temporary names, syncs and renames them,
// then commits the manifest change together with the removal of what they
// replace in one transaction; a crash at any point leaves either the old
// state (the new files are orphans that the next open removes) or the new.
//
// A pass runs on a connection of its own, in a transaction begun before it
// reads the hot rows: ingestion goes on meanwhile (its commits are not in
// the pass's snapshot, so the pass deletes exactly the rows it archived),
// and waits only while the pass commits.
func (s *Store) Compact(ctx context.Context, now time.Time, p lifecycle.Policy) (lifecycle.Report, error) {
	start := time.Now()
	var rep lifecycle.Report
	if s.opt.ReadOnly {
		return rep, errors.New("compact: the store is open read-only")
	}
	s.passMu.Lock()
	defer s.passMu.Unlock()
	s.mu.Lock()
	closed := s.conn == nil
	var err error
	if !closed {
		err = s.reconcile()
	}
	s.mu.Unlock()
	if closed {
		return rep, errors.New("store closed")
	}
	if err != nil {
		return rep, err
	}
	if err := s.compress(ctx, now, p, &rep); err != nil {
		return rep, fmt.Errorf("compress: %w", err)
	}
	if !s.opt.KeepSegments {
		if err := s.mergeSegments(ctx, now, p, &rep); err != nil {
			return rep, fmt.Errorf("merge raw flow log segments: %w", err)
		}
	}
	for _, r := range p.Rollups {
		if err := s.rollup(ctx, now, r, p.CompressLevel, &rep); err != nil {
			return rep, fmt.Errorf("rollup %s: %w", r.Name(), err)
		}
	}
	if err := s.expire(ctx, now, p, &rep); err != nil {
		return rep, fmt.Errorf("delete: %w", err)
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// compressCutoff is the stamp_inserted before which hot rows move: now -
// compress_after, aligned down to a partition boundary when compress_after
// is at least one partition long (so that files hold whole partitions).
func (s *Store) compressCutoff(now time.Time, p lifecycle.Policy) int64 {
	cut := micros(now.Add(-time.Duration(p.CompressAfter)))
	part := s.opt.Partition.Microseconds()
	if time.Duration(p.CompressAfter) >= s.opt.Partition {
		cut = floorTo(cut, part)
	}
	return cut
}

func (s *Store) compress(ctx context.Context, now time.Time, p lifecycle.Policy, rep *lifecycle.Report) error {
	cut := s.compressCutoff(now, p)
	part := s.opt.Partition.Microseconds()
	s.mu.Lock()
	tables := append([]*tableVersion{}, s.tables...)
	gen := s.gen
	s.mu.Unlock()
	c := s.pconn
	for _, t := range tables {
		rows, err := c.QueryContext(ctx, fmt.Sprintf(
			"SELECT DISTINCT epoch_us(stamp_inserted) // %d AS p FROM %s WHERE stamp_inserted < make_timestamp(%d) ORDER BY p", part, t.name, cut))
		if err != nil {
			return err
		}
		var parts []int64
		for rows.Next() {
			var p int64
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return err
			}
			parts = append(parts, p*part)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		order := orderBy(colsHas(t.cols))
		// One transaction per partition: its snapshot is what the file
		// holds and what the commit deletes.
		for _, lo := range parts {
			hi := min(lo+part, cut)
			where := fmt.Sprintf("stamp_inserted >= make_timestamp(%d) AND stamp_inserted < make_timestamp(%d)", lo, hi)
			if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
				return err
			}
			f := s.newFileEntry(RawTier, t.version, t.mask, lo, lo+part)
			q := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s", fileSelect(t.cols), t.name, where, order)
			if err := s.writeParquet(ctx, c, q, &f, p.CompressLevel); err != nil {
				c.ExecContext(context.Background(), "ROLLBACK")
				os.Remove(f.abs)
				return err
			}
			if f.rows == 0 { // the rows went since the listing
				c.ExecContext(context.Background(), "ROLLBACK")
				os.Remove(f.abs)
				continue
			}
			del := fmt.Sprintf("DELETE FROM %s WHERE %s", t.name, where)
			if err := s.commitFiles(ctx, gen, []newFile{f}, nil, nil, []string{del}, []uint64{f.rows}); err != nil {
				os.Remove(f.abs)
				return err
			}
			rep.CompressedRows += int64(f.rows)
			rep.CompressedFiles++
		}
	}
	return nil
}

// mergeSegments is the compress step of the raw flow log: the segment
// files of a partition that began before the compress cutoff become one
// file, sorted over the whole partition, at compress_level (with
// compress_after "0s" the current partition too: later segments of it
// become more files, as rows are additive). Segments are merged only with
// those rolled into the same tiers, and the merged file inherits those
// marks, so the tier views stay exact.
func (s *Store) mergeSegments(ctx context.Context, now time.Time, p lifecycle.Policy, rep *lifecycle.Report) error {
	cut := s.compressCutoff(now, p)
	type group struct {
		part  int64
		tiers string
	}
	groups := map[group][]fileEntry{}
	var keys []group
	for _, f := range s.filesOf(RawTier) {
		if f.mask != rawMask || f.partStart >= cut {
			continue
		}
		var tiers []string
		for _, t := range s.tierNames() {
			if s.rolled[t][f.path] {
				tiers = append(tiers, t)
			}
		}
		g := group{f.partStart, strings.Join(tiers, ",")}
		if groups[g] == nil {
			keys = append(keys, g)
		}
		groups[g] = append(groups[g], f)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].part < keys[j].part })
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	c := s.pconn
	cols := columnsOf(rawMask)
	for _, g := range keys {
		src := groups[g]
		if len(src) < 2 {
			continue
		}
		var want struct{ rows, packets, bytes, flows uint64 }
		var removed, removedAbs []string
		for _, f := range src {
			want.rows += f.rows
			want.packets += f.packets
			want.bytes += f.bytes
			want.flows += f.flows
			removed = append(removed, f.path)
			removedAbs = append(removedAbs, s.absPath(f.path))
		}
		paths := make([]string, len(src))
		for i, f := range src {
			paths[i] = quote(s.absPath(f.path))
		}
		q := "SELECT * FROM read_parquet([" + strings.Join(paths, ", ") + "]) ORDER BY " + fileOrderBy(cols)
		f := s.newFileEntry(RawTier, rawLogVersion, rawMask, g.part, src[0].partEnd)
		if err := s.writeParquet(ctx, c, q, &f, p.CompressLevel); err != nil {
			return err
		}
		if f.rows != want.rows || f.packets != want.packets || f.bytes != want.bytes || f.flows != want.flows {
			os.Remove(f.abs)
			return fmt.Errorf("merged file %s holds %d rows, %d packets, %d bytes, %d flows; its segments %d, %d, %d, %d", f.path, f.rows, f.packets, f.bytes, f.flows, want.rows, want.packets, want.bytes, want.flows)
		}
		var rolled [][2]string
		if g.tiers != "" {
			for _, t := range strings.Split(g.tiers, ",") {
				rolled = append(rolled, [2]string{t, f.path})
			}
		}
		if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
			os.Remove(f.abs)
			return err
		}
		if err := s.commitFiles(ctx, gen, []newFile{f}, rolled, removed, nil, nil); err != nil {
			os.Remove(f.abs)
			return err
		}
		for _, a := range removedAbs {
			if err := os.Remove(a); err != nil && !os.IsNotExist(err) {
				s.log.Warn("cannot remove a merged segment; the next pass retries", "file", a, "err", err)
			}
		}
		rep.CompressedRows += int64(want.rows)
		rep.CompressedFiles++
	}
	return nil
}

// newFileEntry names the next archive file of a tier and partition.
func (s *Store) newFileEntry(tier string, version int, mask core.Field, lo, hi int64) newFile {
	s.nextFileMu.Lock()
	n := s.nextFile
	s.nextFile++
	s.nextFileMu.Unlock()
	ts := time.UnixMicro(lo).UTC().Format("20060102T1504Z")
	rel := path.Join(tier, fmt.Sprintf("v%d", version), fmt.Sprintf("%s_%06d.parquet", ts, n))
	return newFile{fileEntry: fileEntry{path: rel, tier: tier, version: version, mask: mask, partStart: lo, partEnd: hi}, abs: s.absPath(rel)}
}

// writeParquet writes the result of q to f's temporary file with zstd,
// reads its totals back from the file, syncs it and renames it into place.
func (s *Store) writeParquet(ctx context.Context, c *sql.Conn, q string, f *newFile, level int) error {
	if err := os.MkdirAll(filepath.Dir(f.abs), 0o755); err != nil {
		return err
	}
	tmp := f.abs + ".tmp"
	copyQ := fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL %d, ROW_GROUP_SIZE 1000000%s)", q, quote(tmp), level, parquetOptions)
	if _, err := c.ExecContext(ctx, copyQ); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", firstLine(copyQ), err)
	}
	err := c.QueryRowContext(ctx, fmt.Sprintf(
		"SELECT count(*), coalesce(sum(flows), 0)::UBIGINT, coalesce(sum(packets), 0)::UBIGINT, coalesce(sum(bytes), 0)::UBIGINT FROM read_parquet(%s)", quote(tmp))).
		Scan(&f.rows, &f.flows, &f.packets, &f.bytes)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("reading back %s: %w", tmp, err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	st, err := os.Stat(tmp)
	if err != nil {
		return err
	}
	f.fileBytes = uint64(st.Size())
	if err := os.Rename(tmp, f.abs); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(f.abs))
}

func syncFile(p string) error {
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// commitFiles finishes a step's transaction on the pass connection (begun
// by the caller): it lists the new files in the manifest, records rolled-up
// raw files, drops the removed files from the manifest, runs the deletions
// (checking each deletes exactly the expected number of rows when given;
// statements past expect's length are run unchecked: the raw flow log's
// origin updates),
// rebuilds the views and advances the file counter, and commits. It holds
// the writer lock meanwhile; a table version created since the pass began
// (gen) aborts the step, which the next pass redoes.
func (s *Store) commitFiles(ctx context.Context, gen int, files []newFile, rolled [][2]string, removed []string, deletes []string, expect []uint64) error {
	c := s.pconn
	s.mu.Lock()
	s.nextFileMu.Lock()
	next := s.nextFile
	s.nextFileMu.Unlock()
	defer s.mu.Unlock()
	rollback := func(err error) error {
		c.ExecContext(context.Background(), "ROLLBACK")
		// The in-memory manifest may be ahead: reload it from the file.
		_ = s.load(context.Background())
		return err
	}
	if s.gen != gen {
		return rollback(errors.New("the table versions changed during the pass; the next pass redoes it"))
	}
	var stmts []string
	if len(files) > 0 { // one statement: a listing may carry dozens of raw segments
		rows := make([]string, len(files))
		for i, f := range files {
			rows[i] = fmt.Sprintf("(%s, %s, %d, %d, make_timestamp(%d), make_timestamp(%d), %d, %d, %d, %d, %d, now())",
				quote(f.path), quote(f.tier), f.version, uint64(f.mask), f.partStart, f.partEnd, f.rows, f.flows, f.packets, f.bytes, f.fileBytes)
		}
		stmts = append(stmts, "INSERT INTO flowline_files VALUES "+strings.Join(rows, ", "))
	}
	for _, r := range rolled {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO flowline_rolled VALUES (%s, %s)", quote(r[0]), quote(r[1])))
	}
	for _, p := range removed {
		stmts = append(stmts, "DELETE FROM flowline_files WHERE path = "+quote(p), "DELETE FROM flowline_rolled WHERE path = "+quote(p))
	}
	stmts = append(stmts, fmt.Sprintf("UPDATE flowline_meta SET value = '%d' WHERE key = 'next_file'", next))
	for _, q := range stmts {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return rollback(fmt.Errorf("%s: %w", firstLine(q), err))
		}
	}
	for i, q := range deletes {
		res, err := c.ExecContext(ctx, q)
		if err != nil {
			return rollback(fmt.Errorf("%s: %w", firstLine(q), err))
		}
		if i < len(expect) {
			n, _ := res.RowsAffected()
			if uint64(n) != expect[i] {
				return rollback(fmt.Errorf("%s deleted %d rows, but %d were archived: aborted", firstLine(q), n, expect[i]))
			}
		}
	}
	if err := s.loadManifest(ctx, c); err != nil {
		return rollback(err)
	}
	if err := s.buildViews(ctx, c); err != nil {
		return rollback(err)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return rollback(err)
	}
	return nil
}

// rollup re-aggregates the raw files whose partition is older than the
// tier's after and that are not yet rolled into it: one tier file per
// partition, listed together with the raw files it consumed.
func (s *Store) rollup(ctx context.Context, now time.Time, r lifecycle.Rollup, level int, rep *lifecycle.Report) error {
	tier := r.Name()
	cut := micros(now.Add(-time.Duration(r.After)))
	byPart := map[int64][]fileEntry{}
	for _, f := range s.filesOf(RawTier) {
		if f.partEnd <= cut && !s.rolled[tier][f.path] {
			byPart[f.partStart] = append(byPart[f.partStart], f)
		}
	}
	if len(byPart) == 0 {
		return nil
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	c := s.pconn
	parts := make([]int64, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		src := byPart[p]
		var avail core.Field
		var want struct{ packets, bytes, flows uint64 }
		var rolled [][2]string
		var in uint64
		for _, f := range src {
			avail |= f.mask
			want.packets += f.packets
			want.bytes += f.bytes
			want.flows += f.flows
			in += f.rows
			rolled = append(rolled, [2]string{tier, f.path})
		}
		tierMask := rollupMask(r)
		cols := columnsOf(tierMask)
		q := "SELECT " + fileSelect(cols) + " FROM (" + rollupSelect(r, s.readParquet(src), avail) + ") ORDER BY " + orderBy(colsHas(cols))
		f := s.newFileEntry(tier, maxVersion(src), tierMask, p, src[0].partEnd)
		if err := s.writeParquet(ctx, c, q, &f, level); err != nil {
			return err
		}
		if f.packets != want.packets || f.bytes != want.bytes || f.flows != want.flows {
			os.Remove(f.abs)
			return fmt.Errorf("tier file %s holds %d packets, %d bytes, %d flows; its raw files %d, %d, %d", f.path, f.packets, f.bytes, f.flows, want.packets, want.bytes, want.flows)
		}
		if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
			os.Remove(f.abs)
			return err
		}
		if err := s.commitFiles(ctx, gen, []newFile{f}, rolled, nil, nil, nil); err != nil {
			os.Remove(f.abs)
			return err
		}
		rep.RolledUpRows += int64(in)
	}
	return nil
}

func maxVersion(fs []fileEntry) int {
	v := 0
	for _, f := range fs {
		v = max(v, f.version)
	}
	return v
}

// expire removes whole partitions older than delete_after: raw files and
// hot rows with the policy's delete_after, tier files with the tier's.
// Files are unlinked after the commit; a crash in between leaves orphans
// that the next pass removes.
func (s *Store) expire(ctx context.Context, now time.Time, p lifecycle.Policy, rep *lifecycle.Report) error {
	var removed []string
	var removedAbs []string
	var deletes []string
	var rows int64
	part := s.opt.Partition.Microseconds()
	parts := map[string]bool{}
	drop := func(tier string, after time.Duration) {
		if after <= 0 {
			return
		}
		cut := micros(now.Add(-after))
		for _, f := range s.filesOf(tier) {
			if f.partEnd <= cut {
				removed = append(removed, f.path)
				removedAbs = append(removedAbs, s.absPath(f.path))
				rows += int64(f.rows)
				parts[fmt.Sprint(tier, f.partStart)] = true
			}
		}
	}
	s.mu.Lock()
	tables := append([]*tableVersion{}, s.tables...)
	gen := s.gen
	s.mu.Unlock()
	c := s.pconn
	if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	abort := func(err error) error {
		c.ExecContext(context.Background(), "ROLLBACK")
		return err
	}
	drop(RawTier, time.Duration(p.DeleteAfter))
	if p.DeleteAfter > 0 {
		cut := floorTo(micros(now.Add(-time.Duration(p.DeleteAfter))), part)
		for _, t := range tables {
			var n int64
			q := fmt.Sprintf("SELECT epoch_us(stamp_inserted) // %d * %d AS p, count(*) FROM %s WHERE stamp_inserted < make_timestamp(%d) GROUP BY p", part, part, t.name, cut)
			prow, err := c.QueryContext(ctx, q)
			if err != nil {
				return abort(err)
			}
			for prow.Next() {
				var p, k int64
				if err := prow.Scan(&p, &k); err != nil {
					prow.Close()
					return abort(err)
				}
				n += k
				parts[fmt.Sprint(RawTier, p)] = true
			}
			prow.Close()
			if n > 0 {
				deletes = append(deletes, fmt.Sprintf("DELETE FROM %s WHERE stamp_inserted < make_timestamp(%d)", t.name, cut))
				rows += n
			}
		}
	}
	for _, r := range p.Rollups {
		drop(r.Name(), time.Duration(p.TierDeleteAfter(r)))
	}
	if len(removed) == 0 && len(deletes) == 0 {
		return abort(nil)
	}
	if err := s.commitFiles(ctx, gen, nil, nil, removed, deletes, nil); err != nil {
		return err
	}
	for _, a := range removedAbs {
		if err := os.Remove(a); err != nil && !os.IsNotExist(err) {
			s.log.Warn("cannot remove an expired archive file; the next pass retries", "file", a, "err", err)
		}
	}
	rep.DeletedRows += rows
	rep.DeletedPartitions += len(parts)
	return nil
}

// parquetOptions are the extra COPY options of archive files (measured in
// BenchmarkParquetOptions).
var parquetOptions = ", PARQUET_VERSION v2"
