// Package jsonl is an example output plugin for Flowline: it appends each
// record as one JSON line with pmacct's keys (the lines outputs.print
// writes) to the file in its config key `path`.
//
// It writes every batch exactly once, across its own crashes: a batch is
// appended whole and fsynced, then the batch id and the file's length are
// written atomically to a state file beside it (`path` + ".state"). At
// start, anything after the committed length (a batch cut short by a crash)
// is truncated away, and a batch whose id is not above the committed one is
// a resend of a batch already written: it is acknowledged and skipped.
//
// This is the example a third party copies: see main.go for the one call
// that makes it a plugin program, and jsonl_test.go for a test with the
// SDK's in-memory harness.
package jsonl

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flowline/flowline/sdk"
)

// Sample is the plugin's documented config table.
//
//go:embed sample.toml
var Sample string

// Plugin describes the plugin to Flowline.
var Plugin = sdk.Plugin{Name: "jsonl", Sample: Sample}

// JSONL is the output and its configuration.
type JSONL struct {
	// Path is the file the lines are appended to.
	Path string `toml:"path"`
	// TimestampsUTC prints stamps in UTC instead of local time, as
	// pmacct's timestamps_utc.
	TimestampsUTC bool `toml:"timestamps_utc"`

	f       *os.File
	lastID  uint64
	size    int64
	enc     sdk.JSONEncoder
	buf     []byte
	skipped int
}

// New returns the output with its defaults.
func New() sdk.Output { return &JSONL{} }

var _ sdk.Validator = (*JSONL)(nil)

// Validate checks the configuration.
func (j *JSONL) Validate() error {
	if strings.TrimSpace(j.Path) == "" {
		return errors.New("path: the output file is required")
	}
	return nil
}

// Init resolves the path against the data directory.
func (j *JSONL) Init(env *sdk.Env) error {
	if !filepath.IsAbs(j.Path) && env.DataDir != "" {
		j.Path = filepath.Join(env.DataDir, j.Path)
	}
	j.enc.Loc = time.Local
	if j.TimestampsUTC {
		j.enc.Loc = time.UTC
	}
	return nil
}

func (j *JSONL) statePath() string { return j.Path + ".state" }

// Connect opens the file and drops whatever a crash left after the last
// committed batch.
func (j *JSONL) Connect(context.Context) error {
	if err := os.MkdirAll(filepath.Dir(j.Path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(j.Path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	j.f = f
	if data, err := os.ReadFile(j.statePath()); err == nil {
		id, size, ok := strings.Cut(strings.TrimSpace(string(data)), " ")
		if !ok {
			return fmt.Errorf("%s: not a state file", j.statePath())
		}
		if j.lastID, err = strconv.ParseUint(id, 10, 64); err != nil {
			return fmt.Errorf("%s: %w", j.statePath(), err)
		}
		if j.size, err = strconv.ParseInt(size, 10, 64); err != nil {
			return fmt.Errorf("%s: %w", j.statePath(), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	} else if st, err := f.Stat(); err == nil {
		j.size = st.Size() // a file from before the state file: keep it
	}
	if err := f.Truncate(j.size); err != nil {
		return err
	}
	_, err = f.Seek(j.size, 0)
	return err
}

// Write appends the batch's flow records, unless it is a resend.
func (j *JSONL) Write(_ context.Context, b *sdk.Batch) error {
	if b.ID != 0 && b.ID <= j.lastID {
		j.skipped++
		return nil // written before a crash: acknowledge it again
	}
	j.buf = j.buf[:0]
	for i := range b.Records {
		if b.Records[i].Flags&sdk.FlagOptions != 0 {
			continue // exporter metadata, not a flow (outputs.print skips them too)
		}
		j.buf = j.enc.AppendJSON(j.buf, &b.Records[i])
	}
	if _, err := j.f.Write(j.buf); err != nil {
		return err
	}
	if err := j.f.Sync(); err != nil {
		return err
	}
	j.size += int64(len(j.buf))
	if b.ID != 0 {
		j.lastID = b.ID
	}
	return j.commit()
}

// commit records the last batch id and the file's length atomically.
func (j *JSONL) commit() error {
	tmp := j.statePath() + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%d %d\n", j.lastID, j.size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, j.statePath())
}

// Close closes the file.
func (j *JSONL) Close(context.Context) error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
