// Package pcapin is an example input plugin for Flowline: it replays the
// NetFlow/IPFIX datagrams of a pcap file into the pipeline as packets, which
// processors.templates decodes as usual, then ends. Flowline shuts down in
// order when every input has ended, so
//
//	flowline run --config replay.toml
//
// with this input and an output is a way to test a configuration against a
// capture. The replay runs as fast as the pipeline takes it (speed = 0) or
// at a multiple of the capture's own pace.
package pcapin

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flowline/flowline/sdk"
)

// Sample is the plugin's documented config table.
//
//go:embed sample.toml
var Sample string

// Plugin describes the plugin to Flowline.
var Plugin = sdk.Plugin{Name: "pcap", Sample: Sample}

// Pcap is the input and its configuration.
type Pcap struct {
	// File is the capture (classic pcap).
	File string `toml:"file"`
	// Port keeps only datagrams to this UDP port (0: all UDP).
	Port int `toml:"port"`
	// Speed is a multiple of the capture's pace; 0 replays as fast as the
	// pipeline takes it.
	Speed float64 `toml:"speed"`
	// Timestamps is "replay" (the datagram arrives now, as over UDP) or
	// "capture" (it arrives at its capture time).
	Timestamps string `toml:"timestamps"`
	// BatchPackets is the number of datagrams per batch.
	BatchPackets int `toml:"batch_packets"`

	name string
	log  *slog.Logger
	stop chan struct{}
}

// New returns the input with its defaults.
func New() sdk.Input { return &Pcap{Timestamps: "replay", BatchPackets: 256} }

// Validate checks the configuration.
func (p *Pcap) Validate() error {
	switch {
	case strings.TrimSpace(p.File) == "":
		return errors.New("file: the pcap file is required")
	case p.Port < 0 || p.Port > 65535:
		return fmt.Errorf("port = %d: want 0 to 65535", p.Port)
	case p.Speed < 0:
		return errors.New("speed must not be negative")
	case p.Timestamps != "replay" && p.Timestamps != "capture":
		return fmt.Errorf("timestamps = %q: want \"replay\" or \"capture\"", p.Timestamps)
	case p.BatchPackets < 1:
		return errors.New("batch_packets must be at least 1")
	}
	return nil
}

// Init resolves the file and checks that it is a capture it can read.
func (p *Pcap) Init(env *sdk.Env) error {
	if !filepath.IsAbs(p.File) && env.DataDir != "" {
		if _, err := os.Stat(p.File); err != nil {
			p.File = filepath.Join(env.DataDir, p.File)
		}
	}
	f, err := os.Open(p.File)
	if err != nil {
		return fmt.Errorf("file: %w", err)
	}
	defer f.Close()
	if _, err := newReader(f); err != nil {
		return fmt.Errorf("file %s: %w", p.File, err)
	}
	p.name, p.log = env.Name, env.Logger
	p.stop = make(chan struct{})
	return nil
}

// Start replays the capture and returns at its end (or when stopped).
func (p *Pcap) Start(ctx context.Context, emit func(*sdk.Batch) bool) error {
	f, err := os.Open(p.File)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := newReader(f)
	if err != nil {
		return err
	}
	var b *sdk.Batch
	flush := func() {
		if b != nil && len(b.Packets) > 0 {
			emit(b)
		} else if b != nil {
			b.Release()
		}
		b = nil
	}
	defer flush()
	var first, start int64
	sent := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.stop:
			return nil
		default:
		}
		d, err := r.next()
		if errors.Is(err, io.EOF) {
			flush()
			p.log.Info("capture replayed", "file", p.File, "datagrams", sent)
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p.File, err)
		}
		if p.Port != 0 && int(d.dstPort) != p.Port {
			continue
		}
		now := time.Now().UnixNano()
		if p.Speed > 0 {
			if first == 0 {
				first, start = d.time, now
			}
			due := start + int64(float64(d.time-first)/p.Speed)
			if wait := time.Duration(due - now); wait > time.Millisecond {
				flush()
				time.Sleep(wait)
				now = time.Now().UnixNano()
			}
		}
		if b == nil {
			b = sdk.NewPacketBatch()
		}
		at := len(b.Arena)
		if cap(b.Arena)-at < len(d.payload) {
			flush()
			b = sdk.NewPacketBatch()
			at = 0
		}
		b.Arena = append(b.Arena, d.payload...)
		pkt := sdk.Packet{Data: b.Arena[at:len(b.Arena):len(b.Arena)], Exporter: d.src, Received: now, Input: p.name}
		if p.Timestamps == "capture" {
			pkt.Received = d.time
		}
		b.Packets = append(b.Packets, pkt)
		sent++
		if len(b.Packets) >= p.BatchPackets {
			flush()
		}
	}
}

// Stop ends the replay.
func (p *Pcap) Stop(context.Context) error {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	return nil
}
