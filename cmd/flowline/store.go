package main

// The store subcommands: query, top, stats and compact read (or compact) the
// embedded store of the first outputs.duckdb in the configuration. While a
// collector runs it holds the DuckDB file, so they ask it over HTTP on
// agent.metrics_address (loopback); otherwise they open the file directly
// (read-only, except compact).

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/config"
	"github.com/flowline/flowline/core/engine"
	"github.com/flowline/flowline/core/lifecycle"
	"github.com/flowline/flowline/plugins/outputs/duckdb"
)

func init() {
	commands["query"] = command{`query [--config FILE] [--format table|json|csv] "SQL"
                           run SQL over the store (views flows_all, flows_<tier>; table flows)`, cmdQuery}
	commands["top"] = command{`top [--config FILE] --by dst_host[,dst_port...] [--since 1h] [--limit 10] [--order bytes|packets|flows] [--format ...]
                           top talkers from the store`, cmdTop}
	commands["stats"] = command{`stats [--config FILE] [--format table|json]
                           flows per second, bytes per stored flow, compression, disk per day/month/year`, cmdStats}
	commands["compact"] = command{`compact [--config FILE] --now
                           run one life-cycle pass of the store at once`, cmdCompact}
}

// storeRef is the store a subcommand talks to.
type storeRef struct {
	cfg    *config.Config
	plugin *duckdb.DuckDB
	name   string
	api    string // http://host:port, "" when the metrics address is off
}

func findStore(file, output string) (*storeRef, error) {
	cfg, err := loadConfig(file)
	if err != nil {
		return nil, err
	}
	for _, pc := range cfg.Outputs {
		d, ok := pc.Plugin.(*duckdb.DuckDB)
		if !ok || output != "" && pc.DisplayName() != output {
			continue
		}
		ref := &storeRef{cfg: cfg, plugin: d, name: pc.DisplayName()}
		if addr := cfg.Agent.MetricsAddress; addr != "" {
			host, port, err := net.SplitHostPort(addr)
			if err == nil {
				if host == "" || host == "0.0.0.0" || host == "::" {
					host = "127.0.0.1"
				}
				ref.api = "http://" + net.JoinHostPort(host, port)
			}
		}
		return ref, nil
	}
	if output != "" {
		return nil, fmt.Errorf("%s: no outputs.duckdb named %q", cfg.File, output)
	}
	return nil, fmt.Errorf("%s: no [[outputs.duckdb]]: the store commands read the embedded store", cfg.File)
}

// errNoCollector means no collector answered on the API: open the file.
var errNoCollector = errors.New("no collector answers")

// call posts to the running collector's API.
func (r *storeRef) call(what string, req, resp any) error {
	if r.api == "" {
		return errNoCollector
	}
	body, _ := json.Marshal(req)
	c := &http.Client{Timeout: 10 * time.Minute}
	hreq, err := http.NewRequest(http.MethodPost, r.api+duckdb.APIPath(r.name, what), bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if r.plugin.APIToken != "" {
		hreq.Header.Set("Authorization", "Bearer "+r.plugin.APIToken)
	}
	hr, err := c.Do(hreq)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return errNoCollector
		}
		return err
	}
	defer hr.Body.Close()
	if hr.StatusCode == http.StatusNotFound {
		return errNoCollector
	}
	dec := json.NewDecoder(hr.Body)
	dec.UseNumber()
	if hr.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if dec.Decode(&e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("collector API: %s", hr.Status)
	}
	return dec.Decode(resp)
}

// open opens the store file directly.
func (r *storeRef) open(ctx context.Context, readOnly bool) (*duckdb.Store, error) {
	opt := r.plugin.StoreOptions(r.cfg.Agent.DataDir, readOnly)
	s, err := duckdb.Open(ctx, opt)
	if errors.Is(err, duckdb.ErrLocked) {
		if r.api == "" {
			return nil, fmt.Errorf("%w; agent.metrics_address is off, so the running collector cannot be asked", err)
		}
		return nil, fmt.Errorf("%w, and no collector answers at %s", err, r.api)
	}
	return s, err
}

func (r *storeRef) query(ctx context.Context, q string) (*duckdb.Result, error) {
	var res duckdb.Result
	err := r.call("query", map[string]string{"sql": q}, &res)
	if err == nil {
		return &res, nil
	}
	if !errors.Is(err, errNoCollector) {
		return nil, err
	}
	s, err := r.open(ctx, true)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Query(ctx, q)
}

// noteTruncated tells, on stderr, that the store cut an answer.
func noteTruncated(stderr io.Writer, cmd string, res *duckdb.Result) {
	if res.Truncated {
		fmt.Fprintf(stderr, "flowline %s: answer cut at %d rows (outputs.duckdb query_max_rows)\n", cmd, len(res.Rows))
	}
}

type storeFlags struct {
	fs     *flag.FlagSet
	config *string
	output *string
	format *string
}

func newStoreFlags(name string, stderr io.Writer) storeFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return storeFlags{
		fs:     fs,
		config: fs.String("config", "", "configuration file (default: the embedded configs/flowline.toml)"),
		output: fs.String("output", "", "the outputs.duckdb to read, by alias (default: the first)"),
		format: fs.String("format", "table", "table, json or csv"),
	}
}

func (f storeFlags) checkFormat(stderr io.Writer, allowed ...string) bool {
	for _, a := range allowed {
		if *f.format == a {
			return true
		}
	}
	fmt.Fprintf(stderr, "flowline %s: --format %q: want one of %s\n", f.fs.Name(), *f.format, strings.Join(allowed, ", "))
	return false
}

func cmdQuery(args []string, stdout, stderr io.Writer) int {
	f := newStoreFlags("query", stderr)
	if err := f.fs.Parse(args); err != nil {
		return 2
	}
	if f.fs.NArg() != 1 {
		fmt.Fprintln(stderr, `usage: flowline query [--config FILE] [--format table|json|csv] "SQL"`)
		return 2
	}
	if !f.checkFormat(stderr, "table", "json", "csv") {
		return 2
	}
	ref, err := findStore(*f.config, *f.output)
	if err != nil {
		fmt.Fprintln(stderr, "flowline:", err)
		return 1
	}
	res, err := ref.query(context.Background(), f.fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "flowline query:", err)
		return 1
	}
	if err := printResult(stdout, res, *f.format); err != nil {
		fmt.Fprintln(stderr, "flowline query:", err)
		return 1
	}
	noteTruncated(stderr, "query", res)
	return 0
}

func cmdTop(args []string, stdout, stderr io.Writer) int {
	f := newStoreFlags("top", stderr)
	by := f.fs.String("by", "dst_host", "primitives to group by, comma separated (src_host, dst_host, dst_port, proto, ...)")
	since := f.fs.String("since", "1h", "how far back (a duration: 15m, 1h, 7d)")
	limit := f.fs.Int("limit", 10, "rows")
	order := f.fs.String("order", "bytes", "bytes, packets or flows")
	view := f.fs.String("view", "flows_all", "the view to read (flows_all, or a rollup tier such as flows_1h)")
	if err := f.fs.Parse(args); err != nil {
		return 2
	}
	if !f.checkFormat(stderr, "table", "json", "csv") {
		return 2
	}
	var d core.Duration
	if err := d.UnmarshalText([]byte(*since)); err != nil || d <= 0 {
		fmt.Fprintf(stderr, "flowline top: --since %q: want a duration such as 1h or 7d\n", *since)
		return 2
	}
	switch *order {
	case "bytes", "packets", "flows":
	default:
		fmt.Fprintf(stderr, "flowline top: --order %q: want bytes, packets or flows\n", *order)
		return 2
	}
	if *limit <= 0 {
		fmt.Fprintln(stderr, "flowline top: --limit must be positive")
		return 2
	}
	if !isIdent(*view) {
		fmt.Fprintf(stderr, "flowline top: --view %q is not a view name\n", *view)
		return 2
	}
	keys, err := topKeys(*by)
	if err != nil {
		fmt.Fprintln(stderr, "flowline top:", err)
		return 2
	}
	ref, err := findStore(*f.config, *f.output)
	if err != nil {
		fmt.Fprintln(stderr, "flowline:", err)
		return 1
	}
	from := time.Now().Add(-time.Duration(d)).UnixMicro()
	k := strings.Join(keys, ", ")
	q := fmt.Sprintf(`SELECT %s, sum(bytes) AS bytes, sum(packets) AS packets, sum(flows) AS flows
FROM %s WHERE stamp_inserted >= make_timestamp(%d)
GROUP BY ALL ORDER BY %s DESC, %s LIMIT %d`, k, *view, from, *order, k, *limit)
	res, err := ref.query(context.Background(), q)
	if err != nil {
		if strings.Contains(err.Error(), "not found") {
			err = fmt.Errorf("%w\n(is every --by primitive one the aggregate keys on?)", err)
		}
		fmt.Fprintln(stderr, "flowline top:", err)
		return 1
	}
	if err := printResult(stdout, res, *f.format); err != nil {
		fmt.Fprintln(stderr, "flowline top:", err)
		return 1
	}
	noteTruncated(stderr, "top", res)
	return 0
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// topKeys checks --by against the primitives the store has columns for.
func topKeys(by string) ([]string, error) {
	var keys []string
	for _, k := range strings.Split(by, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if !duckdb.IsColumn(k) {
			return nil, fmt.Errorf("--by %q: want primitives among %s", k, strings.Join(duckdb.ColumnNames(), ", "))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("--by: at least one primitive")
	}
	return keys, nil
}

func cmdStats(args []string, stdout, stderr io.Writer) int {
	f := newStoreFlags("stats", stderr)
	if err := f.fs.Parse(args); err != nil {
		return 2
	}
	if !f.checkFormat(stderr, "table", "json") {
		return 2
	}
	ref, err := findStore(*f.config, *f.output)
	if err != nil {
		fmt.Fprintln(stderr, "flowline:", err)
		return 1
	}
	var st duckdb.Stats
	var drops *engine.Drops
	err = ref.call("stats", struct{}{}, &st)
	if err == nil {
		drops = ref.drops()
	}
	if errors.Is(err, errNoCollector) {
		var s *duckdb.Store
		s, err = ref.open(context.Background(), true)
		if err == nil {
			var p *duckdb.Stats
			p, err = s.Stats(context.Background())
			s.Close()
			if p != nil {
				st = *p
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "flowline stats:", err)
		return 1
	}
	if *f.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			*duckdb.Stats
			Collector *engine.Drops `json:"collector,omitempty"`
		}{&st, drops})
		return 0
	}
	printStats(stdout, &st, ref.plugin.Policy())
	if drops != nil {
		printDrops(stdout, drops)
	}
	return 0
}

// drops asks the running collector for its loss counters (nil when it
// does not answer).
func (r *storeRef) drops() *engine.Drops {
	c := &http.Client{Timeout: 10 * time.Second}
	hr, err := c.Get(r.api + engine.DropsPath)
	if err != nil {
		return nil
	}
	defer hr.Body.Close()
	if hr.StatusCode != http.StatusOK {
		return nil
	}
	var d engine.Drops
	if json.NewDecoder(hr.Body).Decode(&d) != nil {
		return nil
	}
	return &d
}

// printDrops is the running collector's part of `flowline stats`.
func printDrops(w io.Writer, d *engine.Drops) {
	fmt.Fprintf(w, "\nRunning collector: dropped %d packets, %d flows since start; queued %s (inputs drop beyond %s of agent.max_buffer = %s); output buffers %s\n",
		d.DroppedPackets, d.DroppedFlows, humanBytes(float64(d.QueuedBytes+d.HeldBytes)), "an eighth", humanBytes(float64(d.BudgetBytes)), humanBytes(float64(d.OutputBytes)))
	for _, e := range d.Entries {
		if e.N > 0 {
			fmt.Fprintf(w, "  %-28s %12d %s (%s)\n", e.Stage, e.N, e.Unit, e.Why)
		}
	}
}

func printStats(w io.Writer, st *duckdb.Stats, p *lifecycle.Policy) {
	fmt.Fprintf(w, "Stored period      %s .. %s (%s)\n", orDash(st.First), orDash(st.Last), time.Duration(st.PeriodSeconds*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(w, "Flows              %d: %.1f/s, %.0f/min, %.0f/h\n", st.Flows, st.FlowsPerSecond, st.FlowsPerMinute, st.FlowsPerHour)
	fmt.Fprintf(w, "Hot table          %d rows, %s, %.1f bytes/flow\n", st.HotRows, humanBytes(float64(st.HotBytes)), st.BytesPerFlowHot)
	fmt.Fprintf(w, "Compressed         %d rows in %d files, %s, %.1f bytes/flow\n", st.CompressedRows, st.CompressedFiles, humanBytes(float64(st.CompressedBytes)), st.BytesPerFlowCompressed)
	if st.RollupRows > 0 {
		fmt.Fprintf(w, "Rollup tiers       %d rows, %s\n", st.RollupRows, humanBytes(float64(st.RollupBytes)))
	}
	if st.CompressionRatio > 0 {
		fmt.Fprintf(w, "Compression ratio  %.1fx\n", st.CompressionRatio)
	}
	fmt.Fprintf(w, "\nAt the current rate (%.0f stored rows a day):\n", st.RowsPerDay)
	fmt.Fprintf(w, "  %-10s %14s %14s\n", "", "compressed", "uncompressed")
	for _, r := range []struct {
		name string
		c, u float64
	}{
		{"per day", st.ProjectedBytesPerDay, st.ProjectedBytesPerDayUncompressed},
		{"per month", st.ProjectedBytesPerMonth, st.ProjectedBytesPerMonthUncompressed},
		{"per year", st.ProjectedBytesPerYear, st.ProjectedBytesPerYearUncompressed},
		{"3 years", st.ProjectedBytesPer3Years, st.ProjectedBytesPer3YearsUncompressed},
	} {
		fmt.Fprintf(w, "  %-10s %14s %14s\n", r.name, humanBytes(r.c), humanBytes(r.u))
	}
	if p != nil && p.DeleteAfter > 0 && st.RowsPerDay > 0 {
		days := time.Duration(p.DeleteAfter).Hours() / 24
		fmt.Fprintf(w, "  with delete_after = %s the store levels off near %s\n", p.DeleteAfter, humanBytes(st.ProjectedBytesPerDay*days))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

func cmdCompact(args []string, stdout, stderr io.Writer) int {
	f := newStoreFlags("compact", stderr)
	now := f.fs.Bool("now", false, "run one pass now")
	if err := f.fs.Parse(args); err != nil {
		return 2
	}
	if !*now {
		fmt.Fprintln(stderr, "usage: flowline compact [--config FILE] --now  (the collector runs passes every check_every by itself)")
		return 2
	}
	ref, err := findStore(*f.config, *f.output)
	if err != nil {
		fmt.Fprintln(stderr, "flowline:", err)
		return 1
	}
	p := ref.plugin.Policy()
	if p == nil {
		fmt.Fprintf(stderr, "flowline compact: %s: outputs.%s has no [outputs.duckdb.lifecycle] table: nothing to do\n", ref.cfg.File, ref.name)
		return 1
	}
	var resp map[string]any
	err = ref.call("compact", struct{}{}, &resp)
	if err == nil {
		fmt.Fprintln(stdout, "flowline compact (by the running collector):", resp["report"])
		return 0
	}
	if !errors.Is(err, errNoCollector) {
		fmt.Fprintln(stderr, "flowline compact:", err)
		return 1
	}
	ctx := context.Background()
	s, err := ref.open(ctx, false)
	if err != nil {
		fmt.Fprintln(stderr, "flowline compact:", err)
		return 1
	}
	rep, err := s.Compact(ctx, time.Now(), *p)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, "flowline compact:", err)
		return 1
	}
	fmt.Fprintln(stdout, "flowline compact:", rep.String())
	return 0
}

// printResult writes a query result as an aligned table, a JSON array of
// objects (keys in column order) or CSV.
func printResult(w io.Writer, res *duckdb.Result, format string) error {
	switch format {
	case "json":
		var b bytes.Buffer
		b.WriteString("[")
		for i, row := range res.Rows {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("\n  {")
			for j, col := range res.Columns {
				if j > 0 {
					b.WriteString(", ")
				}
				k, _ := json.Marshal(col)
				v, err := json.Marshal(row[j])
				if err != nil {
					return err
				}
				b.Write(k)
				b.WriteString(": ")
				b.Write(v)
			}
			b.WriteString("}")
		}
		if len(res.Rows) > 0 {
			b.WriteString("\n")
		}
		b.WriteString("]\n")
		_, err := w.Write(b.Bytes())
		return err
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write(res.Columns)
		for _, row := range res.Rows {
			rec := make([]string, len(row))
			for i, v := range row {
				rec[i] = cell(v)
			}
			cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	}
	cells := make([][]string, 0, len(res.Rows)+1)
	cells = append(cells, res.Columns)
	numeric := make([]bool, len(res.Columns))
	for i, t := range res.Types {
		if i < len(numeric) {
			numeric[i] = isNumericType(t)
		}
	}
	for _, row := range res.Rows {
		rec := make([]string, len(row))
		for i, v := range row {
			rec[i] = cell(v)
		}
		cells = append(cells, rec)
	}
	widths := make([]int, len(res.Columns))
	for _, r := range cells {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for n, r := range cells {
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if numeric[i] && n > 0 {
				b.WriteString(pad + c)
			} else if i == len(r)-1 {
				b.WriteString(c)
			} else {
				b.WriteString(c + pad)
			}
		}
		b.WriteString("\n")
		if n == 0 {
			for i, wd := range widths {
				if i > 0 {
					b.WriteString("  ")
				}
				b.WriteString(strings.Repeat("-", wd))
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "(%d rows)\n", len(res.Rows))
	_, err := io.WriteString(w, b.String())
	return err
}

func isNumericType(t string) bool {
	switch strings.ToUpper(t) {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL":
		return true
	}
	return strings.HasPrefix(strings.ToUpper(t), "DECIMAL")
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return x
	case *big.Int:
		return x.String()
	case json.Number:
		return x.String()
	case float64:
		return fmt.Sprintf("%g", x)
	}
	return fmt.Sprint(v)
}
