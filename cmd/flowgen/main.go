// Command flowgen sends NetFlow v5, v9 or IPFIX traffic with realistic,
// seeded content to a collector and prints the exact totals it sent.
//
// See README.md for examples and internal/flowgen for the library.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/flowline/flowline/internal/flowgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// flagNames maps Config field names to the flags that set them, so that
// configuration errors name the flag.
var flagNames = map[string]string{
	"Target": "-target", "Version": "-version", "Flows": "-flows", "Duration": "-duration",
	"Rate": "-rate", "FlowsPerPacket": "-flows-per-packet", "Seed": "-seed", "SourceIDs": "-source-ids",
	"Exporters": "-exporters", "SamplingRate": "-sampling-rate", "TemplateEvery": "-template-every",
	"TemplateInterval": "-template-interval", "TemplateDelay": "-template-delay", "HostPool": "-hosts", "Distinct": "-distinct",
	"IPv6Share": "-ipv6-share",
}

// output is the JSON object printed with -json.
type output struct {
	flowgen.Totals
	Seconds         float64 `json:"seconds"`
	FlowsPerSecond  float64 `json:"flows_per_second"`
	SamplingRate    uint32  `json:"sampling_rate,omitempty"`
	ExpectedPackets *uint64 `json:"expected_packets,omitempty"`
	ExpectedBytes   *uint64 `json:"expected_bytes,omitempty"`
}

// run parses args, sends the traffic and prints the totals; it returns the
// exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flowgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: flowgen [flags]\n\nSends NetFlow v5/v9/IPFIX flows to a collector and prints exact totals.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var (
		cfg       flowgen.Config
		exporters string
		asJSON    bool
	)
	fs.StringVar(&cfg.Target, "target", "127.0.0.1:9995", "collector `address:port`")
	fs.IntVar(&cfg.Version, "version", 9, "NetFlow version: 5, 9 or 10 (IPFIX)")
	fs.Uint64Var(&cfg.Flows, "flows", 0, "total flows to send (0: until -duration or Ctrl-C)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long to send (0: until -flows)")
	fs.Uint64Var(&cfg.Rate, "rate", 0, "flows per second (0: as fast as possible)")
	fs.IntVar(&cfg.FlowsPerPacket, "flows-per-packet", 30, "flow records per datagram (v5: at most 30)")
	fs.Int64Var(&cfg.Seed, "seed", 1, "seed of the content: the same seed sends the same flows")
	fs.IntVar(&cfg.SourceIDs, "source-ids", 1, "v9 source ids / IPFIX observation domains (v5: engine ids)")
	fs.StringVar(&exporters, "exporters", "", "comma-separated local `addresses` to send from, e.g. 127.0.0.2,127.0.0.3")
	fs.Func("sampling-rate", "announced 1-in-`N` sampling (0 or 1: unsampled)", func(s string) error {
		var v uint32
		if _, err := fmt.Sscanf(s, "%d", &v); err != nil || fmt.Sprint(v) != s {
			return fmt.Errorf("not a number: %q", s)
		}
		cfg.SamplingRate = v
		return nil
	})
	fs.IntVar(&cfg.TemplateEvery, "template-every", 100, "resend templates every N data packets per source id (0: only -template-interval)")
	fs.DurationVar(&cfg.TemplateInterval, "template-interval", 0, "resend templates after this time per source id (0: only -template-every)")
	fs.IntVar(&cfg.TemplateDelay, "template-delay", 0, "data packets per source id sent before the first template")
	fs.IntVar(&cfg.HostPool, "hosts", 1000, "distinct client hosts (servers: about hosts/10)")
	fs.BoolVar(&cfg.Distinct, "distinct", false, "every flow a 5-tuple of its own (a spoofed-source flood)")
	fs.Float64Var(&cfg.IPv6Share, "ipv6-share", 0, "fraction of IPv6 flows, 0 to 1 (not with v5)")
	fs.BoolVar(&asJSON, "json", false, "print the totals as one JSON object")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1 // the flag package has said which flag
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "flowgen: unexpected argument %q\n", fs.Arg(0))
		return 1
	}
	if exporters != "" {
		for _, e := range strings.Split(exporters, ",") {
			cfg.Exporters = append(cfg.Exporters, strings.TrimSpace(e))
		}
	}
	if cfg.TemplateEvery == 0 && cfg.TemplateInterval == 0 {
		fmt.Fprintln(stderr, "flowgen: -template-every and -template-interval are both 0: templates would never be resent")
		return 1
	}

	start := time.Now()
	tot, err := flowgen.Run(ctx, cfg)
	secs := time.Since(start).Seconds()
	if err != nil {
		var ce *flowgen.ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "flowgen: bad flag %s: %s\n", flagNames[ce.Field], ce.Msg)
			return 1
		}
		// Print what was sent before the error, then fail.
		fmt.Fprintln(stderr, err)
	}
	out := output{Totals: tot, Seconds: secs}
	if secs > 0 {
		out.FlowsPerSecond = float64(tot.Flows) / secs
	}
	if cfg.SamplingRate > 1 {
		out.SamplingRate = cfg.SamplingRate
		ep, eb := tot.FlowPackets*uint64(cfg.SamplingRate), tot.FlowBytes*uint64(cfg.SamplingRate)
		out.ExpectedPackets, out.ExpectedBytes = &ep, &eb
	}
	if asJSON {
		b, _ := json.Marshal(out)
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprintf(stdout, "sent %d flows (%d packets, %d bytes) in %d datagrams (%d template) in %.3fs: %.0f flows/s",
			tot.Flows, tot.FlowPackets, tot.FlowBytes, tot.Packets, tot.TemplatePackets, secs, out.FlowsPerSecond)
		if cfg.SamplingRate > 1 {
			fmt.Fprintf(stdout, "; sampling 1:%d, expected %d packets, %d bytes", cfg.SamplingRate, *out.ExpectedPackets, *out.ExpectedBytes)
		}
		fmt.Fprintln(stdout)
	}
	if err != nil {
		return 1
	}
	return 0
}
