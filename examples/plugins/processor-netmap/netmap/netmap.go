// Package netmap is an example processor plugin for Flowline: it classifies
// each flow's source and destination by the longest matching prefix in a
// CSV file of `prefix,tag` lines (like pmacct's networks_file, with a number
// of your choosing per network: a customer, a site), setting pmacct's `tag`
// (source) and `tag2` (destination), which outputs.print writes as "tag" and
// "tag2". Addresses that match no prefix are left without a tag.
//
// Lines starting with # and blank lines are ignored; a bad line is a
// configuration error naming the file and line.
package netmap

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/flowline/flowline/sdk"
)

// Sample is the plugin's documented config table.
//
//go:embed sample.toml
var Sample string

// Plugin describes the plugin to Flowline.
var Plugin = sdk.Plugin{Name: "netmap", Sample: Sample}

// Netmap is the processor and its configuration.
type Netmap struct {
	// NetworksFile is the CSV of `prefix,tag` lines.
	NetworksFile string `toml:"networks_file"`

	// byLen holds the prefixes by length, longest first: a lookup masks the
	// address to each length and probes the map.
	byLen []level
}

type level struct {
	bits int
	v6   bool
	tags map[netip.Addr]uint32
}

// New returns the processor with its defaults.
func New() sdk.Processor { return &Netmap{} }

// Validate checks the configuration.
func (n *Netmap) Validate() error {
	if strings.TrimSpace(n.NetworksFile) == "" {
		return errors.New("networks_file: the CSV of prefix,tag lines is required")
	}
	return nil
}

// Init loads the networks file.
func (n *Netmap) Init(env *sdk.Env) error {
	path := n.NetworksFile
	if !filepath.IsAbs(path) && env.DataDir != "" {
		if _, err := os.Stat(path); err != nil {
			path = filepath.Join(env.DataDir, path)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("networks_file: %w", err)
	}
	defer f.Close()
	levels := map[[2]int]*level{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		p, t, ok := strings.Cut(text, ",")
		if !ok {
			return fmt.Errorf("%s:%d: want prefix,tag", path, line)
		}
		pfx, err := netip.ParsePrefix(strings.TrimSpace(p))
		if err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
		tag, err := strconv.ParseUint(strings.TrimSpace(t), 10, 32)
		if err != nil || tag == 0 {
			return fmt.Errorf("%s:%d: tag %q: want a number from 1 to 4294967295", path, line, strings.TrimSpace(t))
		}
		pfx = pfx.Masked()
		k := [2]int{pfx.Bits(), 0}
		if pfx.Addr().Is6() {
			k[1] = 1
		}
		lv := levels[k]
		if lv == nil {
			lv = &level{bits: pfx.Bits(), v6: k[1] == 1, tags: map[netip.Addr]uint32{}}
			levels[k] = lv
		}
		lv.tags[pfx.Addr()] = uint32(tag)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("networks_file: %w", err)
	}
	for _, lv := range levels {
		n.byLen = append(n.byLen, *lv)
	}
	sort.Slice(n.byLen, func(i, j int) bool { return n.byLen[i].bits > n.byLen[j].bits })
	return nil
}

// lookup returns the tag of the longest prefix holding a, or 0.
func (n *Netmap) lookup(a netip.Addr) uint32 {
	if !a.IsValid() {
		return 0
	}
	a = a.Unmap()
	for i := range n.byLen {
		lv := &n.byLen[i]
		if lv.v6 != a.Is6() {
			continue
		}
		p, err := a.Prefix(lv.bits)
		if err != nil {
			continue
		}
		if t, ok := lv.tags[p.Addr()]; ok {
			return t
		}
	}
	return 0
}

// Process tags every flow of the batch and passes it on.
func (n *Netmap) Process(_ context.Context, b *sdk.Batch, emit sdk.Emit) error {
	for i := range b.Records {
		r := &b.Records[i]
		if r.Flags&sdk.FlagOptions != 0 {
			continue
		}
		if t := n.lookup(r.SrcAddr); t != 0 {
			r.Tag = t
			r.Present |= sdk.FieldTag
		}
		if t := n.lookup(r.DstAddr); t != 0 {
			r.Tag2 = t
			r.Present |= sdk.FieldTag2
		}
	}
	emit(b)
	return nil
}

// Flush has nothing to emit: the processor holds no records.
func (n *Netmap) Flush(context.Context, sdk.Emit) error { return nil }
