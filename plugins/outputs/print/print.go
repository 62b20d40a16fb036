// Package print is outputs.print: pmacct's print plugin. It writes records as
// JSON lines or CSV, with the keys, key order and value forms nfacctd 1.7
// prints (checked against nfacctd itself by tests/pmacct).
//
// Life cycle: Init validates the config; Connect opens a static file (dynamic,
// strftime-like names are opened at the first Write); Write appends every
// record of the batch and flushes, so the batch is on disk when it returns;
// Close flushes and closes the file.
package print

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/plugins/common/pmacct"
)

//go:embed sample.toml
var sample string

func init() {
	registry.Register(registry.Outputs, "print", sample, func() any {
		return &Print{Format: "json"}
	})
}

// Interface guards.
var (
	_ core.Output      = (*Print)(nil)
	_ core.Initializer = (*Print)(nil)
)

// Print is the outputs.print plugin and its configuration.
type Print struct {
	// Format is "json" (one object a line) or "csv".
	Format string `toml:"format"`
	// File is the output file; empty means stdout. %Y %m %d %H %M %S %s %w
	// %z and %% are expanded with the time of each write (pmacct's
	// print_output_file).
	File string `toml:"file"`
	// TimestampsUTC prints stamps in UTC instead of local time.
	TimestampsUTC bool `toml:"timestamps_utc"`

	mu      sync.Mutex
	csv     bool
	dynamic bool
	loc     *time.Location
	now     func() time.Time
	stdout  io.Writer // where File == "" writes; os.Stdout unless a test swaps it

	f       *os.File
	w       *bufio.Writer
	curName string
	// header tells whether the CSV header must be written before the next line.
	header bool

	buf     []byte
	nameBuf []byte
	enc     pmacct.Encoder
}

// Init validates the configuration.
func (p *Print) Init(env *core.Env) error {
	switch strings.ToLower(strings.TrimSpace(p.Format)) {
	case "", "json":
		p.Format, p.csv = "json", false
	case "csv":
		p.Format, p.csv = "csv", true
	default:
		return fmt.Errorf("format %q is not supported: use \"json\" or \"csv\"", p.Format)
	}
	if err := checkName(p.File); err != nil {
		return fmt.Errorf("file %q: %w", p.File, err)
	}
	p.dynamic = strings.Contains(p.File, "%")
	p.loc = time.Local
	if p.TimestampsUTC {
		p.loc = time.UTC
	}
	p.enc.Loc = p.loc
	if p.now == nil {
		p.now = time.Now
	}
	if p.stdout == nil {
		p.stdout = os.Stdout
	}
	return nil
}

// Connect opens a static output file (so that a bad path fails at start-up).
func (p *Print) Connect(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loc == nil {
		return errors.New("Connect before Init")
	}
	if p.File == "" {
		p.w = bufio.NewWriterSize(p.stdout, 64<<10)
		p.header = p.csv
		return nil
	}
	if !p.dynamic {
		return p.open(p.File)
	}
	return nil
}

// open closes the current file (if any) and opens name for append.
func (p *Print) open(name string) error {
	if err := p.closeFile(); err != nil {
		return err
	}
	if dir := filepath.Dir(name); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	p.f, p.curName = f, name
	p.header = p.csv && st.Size() == 0
	if p.w == nil {
		p.w = bufio.NewWriterSize(f, 64<<10)
	} else {
		p.w.Reset(f)
	}
	return nil
}

func (p *Print) closeFile() error {
	if p.f == nil {
		return nil
	}
	var err error
	if p.w != nil {
		err = p.w.Flush()
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	p.f, p.curName = nil, ""
	if err != nil {
		return err
	}
	return nil
}

// Write prints every flow record of the batch and flushes.
func (p *Print) Write(ctx context.Context, b *core.Batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.File != "" && (p.dynamic || p.f == nil) {
		name := p.File
		if p.dynamic {
			p.nameBuf = expandName(p.nameBuf[:0], p.File, p.now().In(p.loc))
			if string(p.nameBuf) != p.curName || p.f == nil {
				name = string(p.nameBuf)
			} else {
				name = p.curName
			}
		}
		if name != p.curName || p.f == nil {
			if err := p.open(name); err != nil {
				return err
			}
		}
	}
	if p.w == nil {
		return errors.New("Write before Connect")
	}
	for i := range b.Records {
		r := &b.Records[i]
		if r.Flags&core.FlagOptions != 0 {
			continue
		}
		if p.csv {
			if p.header {
				p.buf = pmacct.AppendCSVHeader(p.buf[:0], r)
				if _, err := p.w.Write(p.buf); err != nil {
					return p.werr(err)
				}
				p.header = false
			}
			p.buf = p.enc.AppendCSV(p.buf[:0], r)
		} else {
			p.buf = p.enc.AppendJSON(p.buf[:0], r)
		}
		if _, err := p.w.Write(p.buf); err != nil {
			return p.werr(err)
		}
	}
	if err := p.w.Flush(); err != nil {
		return p.werr(err)
	}
	return nil
}

func (p *Print) werr(err error) error {
	name := p.curName
	if name == "" {
		name = "stdout"
	}
	return fmt.Errorf("write %s: %w", name, err)
}

// Close flushes and closes the output file.
func (p *Print) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f != nil {
		return p.closeFile()
	}
	if p.w != nil {
		if err := p.w.Flush(); err != nil {
			return p.werr(err)
		}
	}
	return nil
}
