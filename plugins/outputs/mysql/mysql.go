// Package mysql is outputs.mysql: pmacct's MySQL plugin (sql_table_version 9)
// with a data life cycle and a buffer that survives a database outage.
//
// Life cycle of the output:
//   - Init validates the configuration and opens the spool directory
//     (agent.data_dir/mysql-<name>), where a previous run may have left rows.
//   - Connect checks the server: a wrong password, an unknown host, a missing
//     database or table (without create_table) or a table whose columns do
//     not match the primitives is a permanent error that stops the start with
//     one line saying what to fix. An unreachable server is not: the output
//     starts, buffers, and keeps trying. Connect then starts the flusher (and
//     the life-cycle scheduler).
//   - Write copies the batch's rows into the buffer and returns at once:
//     memory first (buffer_rows), then one spool file per batch
//     (spool_size); rows that fit nowhere are counted (dropped_rows_total)
//     and logged, never silently lost.
//   - The flusher writes the buffer in arrival order: consecutive batches of
//     the same refresh in one transaction (at most transaction_rows rows),
//     as multi-row INSERT ... ON DUPLICATE KEY UPDATE statements of at most
//     multi_values bytes. Each transaction also records its last batch
//     number in the flowline_ledger table, so that after a commit whose
//     outcome was lost with the connection, the retry knows whether it
//     already counted: no batch is written twice or lost.
//   - Close drains the buffer within its deadline and spools the rest for
//     the next start.
package mysql

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/lifecycle"
	"github.com/flowline/flowline/core/ratelog"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/plugins/common/spool"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Outputs, "mysql", sample, func() any { return New() })
}

// Interface guards.
var (
	_ core.MemoryHolder   = (*MySQL)(nil)
	_ core.Output         = (*MySQL)(nil)
	_ core.Initializer    = (*MySQL)(nil)
	_ lifecycle.Compactor = (*MySQL)(nil)
)

// MySQL is the outputs.mysql plugin and its configuration.
type MySQL struct {
	// Host is the server's name or address; "unix:/path" is a socket.
	Host     string `toml:"host"`
	Port     int    `toml:"port"`
	User     string `toml:"user"`
	Password string `toml:"password"`
	Database string `toml:"database"`
	Table    string `toml:"table"`

	// TLS is "" / "false" (plain), "true" (verified), "skip-verify" or
	// "preferred" (TLS when the server offers it).
	TLS     string `toml:"tls"`
	TLSCA   string `toml:"tls_ca"`
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`

	TableVersion    int  `toml:"table_version"`
	OptimizeClauses bool `toml:"optimize_clauses"`
	// Primitives are the aggregate's primitives; optional: the output learns
	// them from the pipeline, and given ones must match.
	Primitives    []string `toml:"primitives"`
	CreateTable   bool     `toml:"create_table"`
	DontTryUpdate bool     `toml:"dont_try_update"`
	TimestampsUTC bool     `toml:"timestamps_utc"`

	// MultiValues bounds one INSERT statement in bytes (pmacct's
	// sql_multi_values); it is kept under half the server's max_allowed_packet.
	MultiValues     core.Size     `toml:"multi_values"`
	TransactionRows int           `toml:"transaction_rows"`
	Timeout         core.Duration `toml:"timeout"`

	// LoadData writes with LOAD DATA LOCAL INFILE into a temporary table
	// and one INSERT ... SELECT (faster); off, or when the server refuses
	// it, with multi-row INSERT statements.
	LoadData bool `toml:"load_data"`

	BufferRows int       `toml:"buffer_rows"`
	SpoolSize  core.Size `toml:"spool_size"`
	SpoolDir   string    `toml:"spool_dir"`

	Lifecycle lifecycle.Policy `toml:"lifecycle"`

	log      *slog.Logger
	name     string
	lay      layout
	mask     core.Field
	policy   *lifecycle.Policy
	buf      *buffer
	m        metrics
	dsn      *driver.Config
	stmtMax  int
	rowsBuf  []row
	dropLog  *ratelog.Limiter
	errLog   *ratelog.Limiter
	initDone bool
	// layoutKnown says the columns are known (primitives given or learned).
	layoutKnown bool

	mu sync.Mutex
	// txMu runs one write transaction at a time (the flusher's and
	// writeOrigin's share the statement buffers).
	txMu      sync.Mutex
	db        *sql.DB
	ready     bool // database, tables and ledger checked
	committed uint64
	started   bool
	stop      chan struct{}
	done      chan struct{}
	sched     *lifecycle.Scheduler
	compactMu sync.Mutex
	cancelRun context.CancelFunc
	// ledgerName is this output's row in flowline_ledger: the table and an
	// id kept in the spool directory, so that collectors sharing a table
	// keep separate sequence numbers.
	ledgerName string
	// origins is flowline_origins: the highest sequence committed per
	// upstream writer (batches of inputs.amqp).
	origins    map[string]uint64
	stmtBuf    []byte
	loadBuf    []byte
	loadData   atomic.Pointer[[]byte]
	noLoad     atomic.Bool
	readerName string
	tupBuf     []byte
	tups       []tuple
	headSQL    string
	now        func() time.Time
}

// New returns the plugin with its defaults.
func New() *MySQL {
	return &MySQL{
		Host: "127.0.0.1", Port: 3306, User: "pmacct", Database: "pmacct", Table: "acct",
		TableVersion: 9, MultiValues: 1 << 20, LoadData: true, TransactionRows: 500_000, Timeout: core.Duration(30 * time.Second),
		BufferRows: 1_000_000, SpoolSize: 1 << 30,
		Lifecycle: lifecycle.Unset(),
		now:       time.Now,
	}
}

type metrics struct {
	bufferRows, bufferCap, spoolBytes, spoolCap prometheus.Gauge
	written, transactions, retries, dropped     prometheus.Counter
	duplicates                                  prometheus.Counter
	redelivered                                 prometheus.Counter
}

func (o *MySQL) registerMetrics(reg prometheus.Registerer) error {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowline", Subsystem: "mysql", Name: name, Help: help})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "mysql", Name: name, Help: help})
	}
	o.m = metrics{
		bufferRows:   g("buffer_rows", "Rows waiting in memory for the database."),
		bufferCap:    g("buffer_capacity_rows", "The memory buffer's size in rows (buffer_rows)."),
		spoolBytes:   g("spool_bytes", "Bytes of rows waiting in spool files."),
		spoolCap:     g("spool_capacity_bytes", "The spool's size in bytes (spool_size)."),
		written:      c("rows_written_total", "Rows committed to the database."),
		transactions: c("transactions_total", "Transactions committed."),
		retries:      c("retries_total", "Failed transactions retried (the database was unreachable or refused them)."),
		dropped:      c("dropped_rows_total", "Rows that fit neither the memory buffer nor the spool."),
		duplicates:   c("dont_try_update_fallbacks_total", "Insert-only transactions redone as updates because the bin already had rows."),
		redelivered:  c("duplicate_batches_total", "Redelivered batches skipped: their writer's sequence was committed before."),
	}
	o.m.bufferCap.Set(float64(o.BufferRows))
	o.m.spoolCap.Set(float64(o.SpoolSize))
	if reg == nil {
		return nil
	}
	for _, m := range []prometheus.Collector{o.m.bufferRows, o.m.bufferCap, o.m.spoolBytes, o.m.spoolCap,
		o.m.written, o.m.transactions, o.m.retries, o.m.dropped, o.m.duplicates, o.m.redelivered} {
		if err := reg.Register(m); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

// Init validates the configuration and opens the spool.
func (o *MySQL) Init(env *core.Env) error {
	if o.initDone {
		return nil
	}
	o.log = env.Logger
	o.name = env.Name
	if o.now == nil {
		o.now = time.Now
	}
	prims, err := core.MatchPrimitives(o.Primitives, env.Primitives)
	if err != nil {
		return err
	}
	o.Primitives = prims
	if o.OptimizeClauses && len(o.Primitives) == 0 {
		return errors.New("optimize_clauses = true needs the primitives: add a processors.aggregate upstream (the output learns them) or set primitives")
	}
	if err := o.validate(); err != nil {
		return err
	}
	if err := o.registerMetrics(env.Metrics); err != nil {
		return err
	}
	dir := spool.DirFor(env.DataDir, o.SpoolDir, "mysql", o.name)
	o.buf = newBuffer(dir, o.BufferRows, int64(o.SpoolSize))
	if err := o.buf.Open(0); err != nil {
		return err
	}
	id, err := instanceID(dir)
	if err != nil {
		return err
	}
	o.ledgerName = o.Table + "@" + id
	if _, sz, n := o.buf.Sizes(); n > 0 {
		o.log.Info("rows from a previous run wait in the spool", "batches", n, "bytes", sz, "dir", dir)
	}
	o.readerName = fmt.Sprintf("flowline-%s-%p", sanitize(o.name), o)
	driver.RegisterReaderHandler(o.readerName, func() io.Reader {
		if p := o.loadData.Load(); p != nil {
			return bytes.NewReader(*p)
		}
		return bytes.NewReader(nil)
	})
	o.dropLog = ratelog.New(o.log, 10*time.Second)
	o.errLog = ratelog.New(o.log, 10*time.Second)
	o.initDone = true
	return nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, s)
}

// Validate checks the configuration (config check calls it too).
func (o *MySQL) Validate() error { return o.validate() }

func (o *MySQL) validate() error {
	if o.TableVersion != 9 {
		return fmt.Errorf("table_version = %d: only pmacct's version 9 is supported", o.TableVersion)
	}
	if strings.TrimSpace(o.Host) == "" {
		return errors.New("host is empty: set the database server's name or address")
	}
	if o.Port <= 0 || o.Port > 65535 {
		return fmt.Errorf("port = %d: want 1 to 65535", o.Port)
	}
	if o.Database == "" || o.Table == "" {
		return errors.New("database and table must not be empty")
	}
	for _, s := range []string{o.Database, o.Table} {
		if strings.ContainsAny(s, "`.") {
			return fmt.Errorf("%q: database and table names must not contain ` or .", s)
		}
	}
	switch strings.ToLower(o.TLS) {
	case "", "false", "true", "skip-verify", "preferred":
	default:
		return fmt.Errorf("tls = %q: want \"false\", \"true\", \"skip-verify\" or \"preferred\"", o.TLS)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("tls_cert and tls_key go together")
	}
	// With optimize_clauses and no primitives, the columns come from the
	// pipeline at Init (config check has no pipeline: it checks the rest).
	o.layoutKnown = !o.OptimizeClauses || len(o.Primitives) > 0
	if o.layoutKnown {
		lay, err := newLayout(o.Primitives, o.OptimizeClauses)
		if err != nil {
			return err
		}
		o.lay = lay
		if o.mask, err = core.PrimitiveMask(o.Primitives); err != nil {
			return fmt.Errorf("primitives: %w", err)
		}
		if len(o.Primitives) == 0 {
			o.mask = ^core.Field(0) // every v9 column, filled from what records carry
		}
	}
	if o.MultiValues < 16<<10 {
		return fmt.Errorf("multi_values = %s: want at least 16KiB", o.MultiValues)
	}
	if o.TransactionRows < 1 {
		return errors.New("transaction_rows must be positive")
	}
	if o.BufferRows < 1 {
		return errors.New("buffer_rows must be positive")
	}
	if o.SpoolSize < 0 {
		return errors.New("spool_size must not be negative")
	}
	if o.Timeout <= 0 {
		return errors.New("timeout must be positive")
	}
	p, err := o.lifecyclePolicy()
	if err != nil {
		return err
	}
	o.policy = p
	return nil
}

// lifecyclePolicy turns the [lifecycle] table into a policy: nil when the
// table was not declared; keys left out take lifecycle.DefaultPolicy's
// values. compress_after = "0s" moves every row at each pass.
func (o *MySQL) lifecyclePolicy() (*lifecycle.Policy, error) {
	levelSet := o.Lifecycle.CompressLevel != lifecycle.NotSet
	l, err := o.Lifecycle.Resolve()
	if err != nil || l == nil {
		return nil, err
	}
	if !levelSet {
		l.CompressLevel = 6 // zlib: 9 takes twice the CPU for nothing here (README)
	}
	if l.CompressLevel > 9 {
		return nil, fmt.Errorf("lifecycle: compress_level = %d: MySQL's page compression (zlib) takes 1 to 9", l.CompressLevel)
	}
	for i, r := range l.Rollups {
		if _, err := newLayout(r.Primitives, true); err != nil {
			return nil, fmt.Errorf("lifecycle.rollup[%d]: %w", i, err)
		}
		for _, n := range r.Primitives {
			if o.layoutKnown && !o.writes(n) {
				return nil, fmt.Errorf("lifecycle.rollup[%d]: primitive %s is not one the output writes", i, n)
			}
		}
	}
	return l, nil
}

// writes reports whether the acct table holds primitive n's column.
func (o *MySQL) writes(n string) bool {
	p, ok := core.LookupPrimitive(n)
	if !ok {
		return false
	}
	if p.Name == "flows" {
		return o.lay.flows
	}
	for _, c := range o.lay.keys {
		if c.name == sqlColumn(p) {
			return true
		}
	}
	return false
}

// addr is host:port (or the socket path) for messages.
func (o *MySQL) addr() string {
	if strings.HasPrefix(o.Host, "unix:") {
		return strings.TrimPrefix(o.Host, "unix:")
	}
	return net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
}

// driverConfig builds the driver's configuration (no database selected: it
// may not exist yet).
func (o *MySQL) driverConfig() (*driver.Config, error) {
	c := driver.NewConfig()
	c.User, c.Passwd = o.User, o.Password
	if strings.HasPrefix(o.Host, "unix:") {
		c.Net, c.Addr = "unix", strings.TrimPrefix(o.Host, "unix:")
	} else {
		c.Net, c.Addr = "tcp", o.addr()
	}
	c.Timeout = 10 * time.Second
	c.ReadTimeout = time.Duration(o.Timeout)
	c.WriteTimeout = time.Duration(o.Timeout)
	c.MaxAllowedPacket = 0 // read it from the server
	c.Params = map[string]string{}
	if o.TimestampsUTC {
		c.Params["time_zone"] = "'+00:00'"
	}
	switch strings.ToLower(o.TLS) {
	case "true", "skip-verify", "preferred":
		tc := &tls.Config{ServerName: o.Host, InsecureSkipVerify: strings.EqualFold(o.TLS, "skip-verify")}
		if o.TLSCA != "" {
			pem, err := os.ReadFile(o.TLSCA)
			if err != nil {
				return nil, fmt.Errorf("tls_ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls_ca %s: no PEM certificate in it", o.TLSCA)
			}
			tc.RootCAs = pool
		}
		if o.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
			if err != nil {
				return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		if strings.EqualFold(o.TLS, "preferred") {
			tc.InsecureSkipVerify = true
			c.AllowFallbackToPlaintext = true
		}
		c.TLS = tc
	}
	return c, nil
}

// Connect checks the server, the database and the table, then starts the
// flusher. See the package comment for which errors are permanent.
func (o *MySQL) Connect(ctx context.Context) error {
	if !o.initDone {
		return errors.New("Connect before Init")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.started {
		return nil
	}
	if o.db == nil {
		c, err := o.driverConfig()
		if err != nil {
			return core.Permanent(err)
		}
		o.dsn = c
		conn, err := driver.NewConnector(c)
		if err != nil {
			return core.Permanent(err)
		}
		o.db = sql.OpenDB(conn)
		o.db.SetMaxOpenConns(4)
		o.db.SetMaxIdleConns(4)
		o.db.SetConnMaxIdleTime(5 * time.Minute)
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err := o.setupLocked(sctx)
	cancel()
	if err != nil {
		if core.IsPermanent(err) {
			return err
		}
		o.log.Warn("database not reachable yet: buffering and retrying", "addr", o.addr(), "err", err)
	}
	o.stop, o.done = make(chan struct{}), make(chan struct{})
	o.started = true
	go o.flusher()
	if o.policy != nil {
		o.sched = lifecycle.Start(o, *o.policy, o.log)
	}
	return nil
}

// setupLocked pings the server, creates or checks the database, the table,
// the ledger and the life-cycle tables. Errors a retry cannot fix are
// Permanent and say what to change.
func (o *MySQL) setupLocked(ctx context.Context) error {
	if o.ready {
		return nil
	}
	if err := o.db.PingContext(ctx); err != nil {
		return o.classify(err)
	}
	var maxPacket int
	if err := o.db.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&maxPacket); err != nil {
		return o.classify(err)
	}
	o.stmtMax = min(int(o.MultiValues), maxPacket/2)
	var n int
	if err := o.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", o.Database).Scan(&n); err != nil {
		return o.classify(err)
	}
	if n == 0 {
		if !o.CreateTable {
			return core.Permanent(fmt.Errorf("database %q does not exist on %s: create it, or set create_table = true", o.Database, o.addr()))
		}
		if _, err := o.db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(o.Database)); err != nil {
			return o.classify(fmt.Errorf("creating database %s: %w", o.Database, err))
		}
	}
	exists, err := o.lay.checkTable(ctx, o.db, o.Database, o.Table)
	if err != nil {
		if exists {
			return core.Permanent(err)
		}
		return o.classify(err)
	}
	if !exists {
		if !o.CreateTable {
			return core.Permanent(fmt.Errorf("table %s.%s does not exist: create it (pmacct's sql/pmacct-create-db_v9.mysql or examples/mysql/schema.sql), or set create_table = true", o.Database, o.Table))
		}
		if _, err := o.db.ExecContext(ctx, o.lay.createTable(o.qtable(o.Table))); err != nil {
			return o.classify(fmt.Errorf("creating table %s.%s: %w", o.Database, o.Table, err))
		}
		o.log.Info("created table", "table", o.Database+"."+o.Table)
	}
	if _, err := o.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+o.qtable("flowline_ledger")+
		" (name VARCHAR(191) NOT NULL PRIMARY KEY, seq BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB"); err != nil {
		return o.classify(fmt.Errorf("creating %s.flowline_ledger (the table that makes retries exact): %w", o.Database, err))
	}
	var seq sql.NullInt64
	err = o.db.QueryRowContext(ctx, "SELECT seq FROM "+o.qtable("flowline_ledger")+" WHERE name = ?", o.ledgerName).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return o.classify(err)
	}
	o.committed = uint64(seq.Int64)
	if _, err := o.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+o.qtable("flowline_origins")+
		" (writer VARCHAR(191) NOT NULL PRIMARY KEY, seq BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB"); err != nil {
		return o.classify(fmt.Errorf("creating %s.flowline_origins (the table that stores a redelivered batch once): %w", o.Database, err))
	}
	origins := map[string]uint64{}
	orows, err := o.db.QueryContext(ctx, "SELECT writer, seq FROM "+o.qtable("flowline_origins"))
	if err != nil {
		return o.classify(err)
	}
	for orows.Next() {
		var w string
		var s uint64
		if err := orows.Scan(&w, &s); err != nil {
			orows.Close()
			return o.classify(err)
		}
		origins[w] = s
	}
	orows.Close()
	if err := orows.Err(); err != nil {
		return o.classify(err)
	}
	o.origins = origins
	if err := o.buf.Open(o.committed); err != nil {
		return core.Permanent(err)
	}
	if o.policy != nil {
		if err := o.setupLifecycle(ctx); err != nil {
			return err
		}
	}
	o.ready = true
	return nil
}

// qtable is `database`.`table`.
func (o *MySQL) qtable(t string) string { return quoteIdent(o.Database) + "." + quoteIdent(t) }

// classify turns a driver error into one line that says what to fix, and
// marks it Permanent when retrying cannot help.
func (o *MySQL) classify(err error) error {
	var me *driver.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1045:
			return core.Permanent(fmt.Errorf("%s refused user %q: wrong user or password (check user and password; ${ENV} in password is expanded)", o.addr(), o.User))
		case 1044, 1142, 1227:
			return core.Permanent(fmt.Errorf("user %q lacks a privilege on %s: %s (grant it, e.g. GRANT ALL ON %s.* TO '%s')", o.User, o.Database, me.Message, o.Database, o.User))
		}
		return fmt.Errorf("%s: %w", o.addr(), err)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return core.Permanent(fmt.Errorf("unknown database host %q: check host (the name does not resolve)", dnsErr.Name))
	}
	return fmt.Errorf("cannot reach %s: %w", o.addr(), err)
}

// Write copies the batch's flow records into the buffer and returns; the
// flusher writes them. Rows that fit neither memory nor spool are counted
// and logged.
func (o *MySQL) Write(ctx context.Context, b *core.Batch) error {
	if !o.initDone {
		return errors.New("Write before Init")
	}
	now := o.now().Unix()
	rows := make([]row, 0, len(b.Records))
	for i := range b.Records {
		r := &b.Records[i]
		if r.Flags&core.FlagOptions != 0 {
			continue
		}
		rows = append(rows, row{})
		rows[len(rows)-1].fromRecord(r, o.mask, now)
	}
	if b.Origin.Writer != "" {
		return o.writeOrigin(ctx, rows, b.Origin)
	}
	dropped, err := o.buf.Push(rows, rowsTag(rows))
	o.updateGauges()
	if dropped > 0 {
		o.m.dropped.Add(float64(dropped))
		o.dropLog.Log(slog.LevelError, "buffer full: rows dropped (raise buffer_rows or spool_size, or bring the database back)", "rows", dropped, "err", err)
	}
	return nil
}

func (o *MySQL) updateGauges() {
	memRows, spool, _ := o.buf.Sizes()
	o.m.bufferRows.Set(float64(memRows))
	o.m.spoolBytes.Set(float64(spool))
}

// Close stops the life-cycle scheduler, drains the buffer until ctx ends and
// spools what is left for the next start.
func (o *MySQL) Close(ctx context.Context) error {
	o.mu.Lock()
	started := o.started
	o.mu.Unlock()
	if o.sched != nil {
		o.sched.Stop()
	}
	if started {
		close(o.stop)
		select {
		case <-o.done:
		case <-ctx.Done():
			// Out of time: abandon the write in flight (its rows stay
			// buffered; the ledger tells the next start whether it landed).
			o.mu.Lock()
			if o.cancelRun != nil {
				o.cancelRun()
			}
			o.mu.Unlock()
			<-o.done
		}
	}
	var err error
	if o.buf != nil {
		lost, serr := o.buf.Spill()
		o.updateGauges()
		if lost > 0 {
			o.m.dropped.Add(float64(lost))
			o.log.Error("rows lost at close: the database did not take them and the spool could not", "rows", lost, "err", serr)
			err = fmt.Errorf("%d rows lost at close: %v", lost, serr)
		} else if _, sz, n := o.buf.Sizes(); n > 0 {
			o.log.Warn("rows left in the spool for the next start", "batches", n, "bytes", sz)
		}
	}
	if o.db != nil {
		o.db.Close()
	}
	if o.readerName != "" {
		driver.DeregisterReaderHandler(o.readerName)
	}
	return err
}

// instanceID is a random id kept in dir/instance-id (made at the first
// start); without a directory it is new for every process, which is right
// as nothing of a previous process survives then either.
func instanceID(dir string) (string, error) {
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	if dir == "" {
		return id, nil
	}
	path := filepath.Join(dir, "instance-id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}

// HeldBytes is the memory of what waits in the memory buffer (the engine's
// budget counts it).
func (o *MySQL) HeldBytes() int64 {
	if o.buf == nil {
		return 0
	}
	return o.buf.MemBytes()
}
