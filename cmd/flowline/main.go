// Command flowline is the Flowline flow collector.
//
//	flowline run [--config FILE]       run the pipeline (default: the embedded configs/flowline.toml)
//	flowline config                    print the full sample configuration
//	flowline config check FILE         validate a configuration without running it
//	                                   (external plugins are started and check their config)
//	flowline config --plugin PATH      print the sample config of an external plugin program
//	flowline version                   print the version
//
// Further subcommands (query, top, stats, compact) live in files of their
// own and add themselves to commands from init().
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/flowline/flowline/configs"
	"github.com/flowline/flowline/core/config"
	"github.com/flowline/flowline/core/engine"
	"github.com/flowline/flowline/core/metrics"
	"github.com/flowline/flowline/core/pluginrpc"
	_ "github.com/flowline/flowline/plugins/all"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand: its usage line and its function, which gets
// the arguments after the subcommand's name and returns the exit code.
type command struct {
	usage string
	run   func(args []string, stdout, stderr io.Writer) int
}

// commands holds the subcommands; files add theirs from init().
var commands = map[string]command{
	"run":     {"run [--config FILE]      run the collector (without --config: the embedded default)", func(a []string, _, e io.Writer) int { return cmdRun(a, e) }},
	"config":  {"config [check FILE | --plugin PATH]  print the sample configuration, check FILE, or print a plugin's sample", cmdConfig},
	"version": {"version                  print the version", func(_ []string, o, _ io.Writer) int { fmt.Fprintln(o, "flowline", version); return 0 }},
}

// usage lists the subcommands.
func usage() string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("flowline: a NetFlow v5/v9 and IPFIX collector\n\nUsage:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  flowline %s\n", commands[n].usage)
	}
	return b.String()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	switch args[0] {
	case "--version", "-v":
		args[0] = "version"
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return 0
	}
	if c, ok := commands[args[0]]; ok {
		// No external plugin process outlives the command.
		defer pluginrpc.CleanupClients()
		return c.run(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "flowline: unknown command %q\n\n%s", args[0], usage())
	return 2
}

// loadConfig reads FILE, or the embedded default when file is "".
func loadConfig(file string) (*config.Config, error) {
	if file == "" {
		return config.Parse(configs.DefaultName, configs.Default)
	}
	return config.Load(file)
}

func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, config.SampleConfig())
		return 0
	}
	if args[0] == "check" && len(args) == 2 {
		cfg, err := config.Load(args[1])
		if err == nil {
			err = checkPlugins(cfg, stderr)
		}
		if err != nil {
			fmt.Fprintln(stderr, "flowline:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok (%d inputs, %d processors, %d outputs)\n", args[1], len(cfg.Inputs), len(cfg.Processors), len(cfg.Outputs))
		return 0
	}
	if args[0] == "--plugin" && len(args) == 2 {
		info, err := pluginrpc.Sample(context.Background(), args[1])
		if err != nil {
			fmt.Fprintln(stderr, "flowline:", err)
			return 1
		}
		fmt.Fprintf(stdout, "## %s: plugin %q (%s, SDK %s)\n", args[1], info.Name, info.Kind, info.SdkVersion)
		fmt.Fprint(stdout, info.Sample)
		return 0
	}
	fmt.Fprint(stderr, "usage: flowline config | flowline config check FILE | flowline config --plugin PATH\n")
	return 2
}

// checkPlugins builds the pipeline, which runs every plugin's Init, against
// a scratch data directory: a check must neither touch the running
// collector's files (its store is locked while it runs) nor leave any behind.
// Warnings (a configuration that works but may surprise) go to warn.
func checkPlugins(cfg *config.Config, warn io.Writer) error {
	scratch, err := os.MkdirTemp("", "flowline-check")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	cfg.Agent.DataDir = scratch
	e, err := engine.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		return err
	}
	for _, w := range e.Warnings() {
		fmt.Fprintln(warn, "flowline: warning:", w)
	}
	return nil
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "configuration file (default: the embedded configs/flowline.toml)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		fmt.Fprintln(stderr, "flowline:", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel(cfg.Agent.LogLevel)}))
	eng, err := engine.New(cfg, log, metrics.New())
	if err != nil {
		fmt.Fprintln(stderr, "flowline:", err)
		return 1
	}

	// The first SIGINT/SIGTERM shuts down in order; a second forces the exit.
	ctx, cancel := context.WithCancel(context.Background())
	force := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s := <-sigs
		log.Info("signal received: shutting down (send it again to force)", "signal", s.String())
		cancel()
		s = <-sigs
		log.Warn("second signal: forcing shutdown", "signal", s.String())
		close(force)
	}()
	if err := eng.Run(ctx, force); err != nil {
		log.Error("flowline stopped", "err", err)
		return 1
	}
	return 0
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return slog.LevelInfo
	}
	return l
}
