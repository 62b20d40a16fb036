package config

import (
	"strings"

	"github.com/flowline/flowline/core/registry"
)

// agentSample is the [agent] section of the full sample. Its values are the
// defaults of DefaultAgent.
const agentSample = `## Flowline configuration.
##
## Values may use environment variables: ${NAME}, or ${NAME:-default} when
## NAME may be unset or empty. Comments are left alone.
## Durations: "30s", "10m", "1h30m", "90d", "2w", or a number of seconds.
## Sizes: "32MiB", "1GiB", "512KiB", "16MB", "4k", or a number of bytes.

[agent]
  ## Directory for the templates file, the embedded store and the spool.
  ## Relative paths are relative to the working directory.
  data_dir = "./data"

  ## Address of /metrics and /healthz; "" turns them off.
  metrics_address = "127.0.0.1:9108"

  ## One of debug, info, warn, error.
  log_level = "info"

  ## How long a graceful shutdown may take before it is forced.
  shutdown_timeout = "30s"

  ## Capacity, in batches, of the queue between two stages (at most 4
  ## between two processors: a backlog waits as datagrams, which take a
  ## fifth of the memory of decoded records).
  channel_batches = 64

  ## Number of packets or records in a full batch.
  batch_size = 1024

  ## Memory budget of the pipeline. Batches queued between stages and the
  ## templates' early-data queue may take an eighth of it: beyond, the
  ## inputs drop datagrams, count them and say so in the log (at most every
  ## 10 s, with the totals in the shutdown line). The Go heap is held under
  ## nine sixteenths of it. Outputs' memory buffers have bounds of their own
  ## and spill to disk.
  max_buffer = "256MiB"

  ## Serve Go's profiler under /debug/pprof/ on metrics_address.
  # pprof = false
`

var kindTitles = map[registry.Kind]string{
	registry.Inputs:     "INPUTS",
	registry.Processors: "PROCESSORS",
	registry.Outputs:    "OUTPUTS",
}

// SampleConfig returns the full sample configuration: the [agent] section,
// then the Sample of every registered plugin, grouped by kind (inputs,
// processors, outputs) and sorted by name, each preceded by a "##" header.
func SampleConfig() string {
	var b strings.Builder
	b.WriteString(agentSample)
	for _, kind := range kinds {
		names := registry.Names(kind)
		if len(names) == 0 {
			continue
		}
		bar := "###############################################################################"
		b.WriteString("\n\n" + bar + "\n")
		b.WriteString(centre(kindTitles[kind], len(bar)) + "\n")
		b.WriteString(bar + "\n")
		for _, name := range names {
			p, _ := registry.Lookup(kind, name)
			b.WriteString("\n## " + string(kind) + "." + name + "\n")
			sample := strings.TrimRight(p.Sample, "\n")
			if sample == "" {
				sample = "[[" + string(kind) + "." + name + "]]"
			}
			b.WriteString(sample + "\n")
		}
	}
	return b.String()
}

// centre puts title in the middle of a "##" line of the given width.
func centre(title string, width int) string {
	inner := width - 4
	left := (inner - len(title)) / 2
	right := inner - len(title) - left
	return "##" + strings.Repeat(" ", left) + title + strings.Repeat(" ", right) + "##"
}
