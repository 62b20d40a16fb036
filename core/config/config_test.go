package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/registry"
)

type testInput struct {
	Address    string    `toml:"address"`
	Sockets    int       `toml:"sockets"`
	ReadBuffer core.Size `toml:"read_buffer"`
}

type testAggregate struct {
	Primitives []string      `toml:"primitives"`
	History    core.Duration `toml:"history"`
	Refresh    core.Duration `toml:"refresh"`
}

func (a *testAggregate) Validate() error {
	if a.Refresh <= 0 {
		return errors.New("refresh must be greater than 0")
	}
	return nil
}

type testRollup struct {
	Name string        `toml:"name"`
	Bin  core.Duration `toml:"bin"`
}

type testLifecycle struct {
	CompressAfter core.Duration `toml:"compress_after"`
	DeleteAfter   core.Duration `toml:"delete_after"`
}

type testOutput struct {
	Format    string         `toml:"format"`
	Lifecycle testLifecycle  `toml:"lifecycle"`
	Rollups   []testRollup   `toml:"rollup"`
	Options   map[string]any `toml:"options"`
}

const (
	inputSample = `[[inputs.cfgtest_input]]
  ## Where to listen.
  address = "0.0.0.0:9995"
  # sockets = 1
  read_buffer = "32MiB"`
	aggregateSample = `[[processors.cfgtest_aggregate]]
  primitives = ["src_host", "dst_host"]
  history = "10m"
  refresh = "30s"
`
	outputSample = `[[outputs.cfgtest_output]]
  format = "json"
  [outputs.cfgtest_output.lifecycle]
    compress_after = "1d"
    delete_after = "90d"
  [[outputs.cfgtest_output.rollup]]
    name = "hourly"
    bin = "1h"
`
)

func init() {
	registry.Register(registry.Processors, "cfgtest_zfirst", "[[processors.cfgtest_zfirst]]", func() any { return &testInput{} })
	registry.Register(registry.Inputs, "cfgtest_input", inputSample, func() any {
		return &testInput{Address: "0.0.0.0:9995", Sockets: 1, ReadBuffer: 32 << 20}
	})
	registry.Register(registry.Processors, "cfgtest_aggregate", aggregateSample, func() any {
		return &testAggregate{History: core.Duration(10 * time.Minute), Refresh: core.Duration(30 * time.Second)}
	})
	registry.Register(registry.Outputs, "cfgtest_output", outputSample, func() any {
		return &testOutput{Format: "json", Lifecycle: testLifecycle{DeleteAfter: core.Duration(30 * 24 * time.Hour)}}
	})
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse("flowline.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func TestEmptyConfigHasDefaults(t *testing.T) {
	cfg := mustParse(t, "")
	if cfg.Agent != DefaultAgent() {
		t.Errorf("agent = %+v, want %+v", cfg.Agent, DefaultAgent())
	}
	if cfg.File != "flowline.toml" {
		t.Errorf("File = %q", cfg.File)
	}
	if len(cfg.Inputs)+len(cfg.Processors)+len(cfg.Outputs) != 0 {
		t.Errorf("unexpected plugins: %+v", cfg)
	}
}

func TestAgent(t *testing.T) {
	cfg := mustParse(t, `
[agent]
  data_dir = "/var/lib/flowline"
  log_level = "debug"
  shutdown_timeout = "1m"
  batch_size = 10
`)
	want := DefaultAgent()
	want.DataDir = "/var/lib/flowline"
	want.LogLevel = "debug"
	want.ShutdownTimeout = core.Duration(time.Minute)
	want.BatchSize = 10
	if cfg.Agent != want {
		t.Errorf("agent = %+v, want %+v", cfg.Agent, want)
	}
	cfg = mustParse(t, "[agent]\nmetrics_address = \"\"\nshutdown_timeout = 5\n")
	if cfg.Agent.MetricsAddress != "" || cfg.Agent.ShutdownTimeout != core.Duration(5*time.Second) {
		t.Errorf("agent = %+v", cfg.Agent)
	}
}

func TestPlugins(t *testing.T) {
	cfg := mustParse(t, `# comment
[agent]
  batch_size = 512

[[inputs.cfgtest_input]]
  alias = "edge"
  address = ":2055"

[[inputs.cfgtest_input]]
  sockets = 4
  read_buffer = 1024

[[processors.cfgtest_aggregate]]
  primitives = ["src_host"]
  history = "1h"

[[outputs.cfgtest_output]]
  format = "csv"
  [outputs.cfgtest_output.lifecycle]
    compress_after = "2d"
  [[outputs.cfgtest_output.rollup]]
    name = "a"
    bin = "1h"
  [[outputs.cfgtest_output.rollup]]
    name = "b"
    bin = "1d"
  [outputs.cfgtest_output.options]
    anything = { goes = 1 }
`)
	if len(cfg.Inputs) != 2 || len(cfg.Processors) != 1 || len(cfg.Outputs) != 1 {
		t.Fatalf("plugins: %d inputs, %d processors, %d outputs", len(cfg.Inputs), len(cfg.Processors), len(cfg.Outputs))
	}
	in0, in1 := cfg.Inputs[0], cfg.Inputs[1]
	if in0.Alias != "edge" || in0.DisplayName() != "edge" || in1.Alias != "" || in1.DisplayName() != "cfgtest_input" {
		t.Errorf("aliases: %q %q", in0.Alias, in1.Alias)
	}
	if in0.Line != 5 || in1.Line != 9 {
		t.Errorf("lines: %d %d, want 5 9", in0.Line, in1.Line)
	}
	if got := in1.Where(); got != "flowline.toml:9: inputs.cfgtest_input" {
		t.Errorf("Where = %q", got)
	}
	p0 := in0.Plugin.(*testInput)
	if *p0 != (testInput{Address: ":2055", Sockets: 1, ReadBuffer: 32 << 20}) {
		t.Errorf("input 0 = %+v (defaults must survive)", *p0)
	}
	p1 := in1.Plugin.(*testInput)
	if *p1 != (testInput{Address: "0.0.0.0:9995", Sockets: 4, ReadBuffer: 1024}) {
		t.Errorf("input 1 = %+v", *p1)
	}
	agg := cfg.Processors[0].Plugin.(*testAggregate)
	if agg.History != core.Duration(time.Hour) || agg.Refresh != core.Duration(30*time.Second) || len(agg.Primitives) != 1 {
		t.Errorf("aggregate = %+v", *agg)
	}
	out := cfg.Outputs[0].Plugin.(*testOutput)
	if out.Format != "csv" || out.Lifecycle.CompressAfter != core.Duration(48*time.Hour) || out.Lifecycle.DeleteAfter != core.Duration(30*24*time.Hour) {
		t.Errorf("output = %+v", *out)
	}
	if len(out.Rollups) != 2 || out.Rollups[1].Name != "b" || out.Rollups[1].Bin != core.Duration(24*time.Hour) {
		t.Errorf("rollups = %+v", out.Rollups)
	}
	if cfg.Agent.BatchSize != 512 {
		t.Errorf("batch_size = %d", cfg.Agent.BatchSize)
	}
}

func TestPluginOrderFollowsFile(t *testing.T) {
	cfg := mustParse(t, `
[[processors.cfgtest_zfirst]]
[[processors.cfgtest_aggregate]]
[[processors.cfgtest_zfirst]]
`)
	var got []string
	for _, p := range cfg.Processors {
		got = append(got, p.Name)
	}
	if strings.Join(got, ",") != "cfgtest_zfirst,cfgtest_aggregate,cfgtest_zfirst" {
		t.Errorf("order = %v", got)
	}
}

func TestSingleTableForm(t *testing.T) {
	cfg := mustParse(t, "[inputs.cfgtest_input]\naddress = \"x:1\"\n")
	if len(cfg.Inputs) != 1 || cfg.Inputs[0].Plugin.(*testInput).Address != "x:1" || cfg.Inputs[0].Line != 1 {
		t.Errorf("inputs = %+v", cfg.Inputs)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // each must appear in the error; with a leading "!", must not
	}{
		{"syntax", "[agent]\nlog_level = \"info\nbatch_size = 1\n",
			[]string{"flowline.toml:2:"}},
		{"unknown key", "[[inputs.cfgtest_input]]\n  adress = \"x\"\n",
			[]string{`flowline.toml:2: inputs.cfgtest_input: unknown key "adress" (known: address, alias, read_buffer, sockets)`}},
		{"unknown key in second instance", "[[inputs.cfgtest_input]]\naddress = \"a\"\n\n[[inputs.cfgtest_input]]\naddress = \"b\"\nbogus = 1\n",
			[]string{`flowline.toml:6: inputs.cfgtest_input: unknown key "bogus"`}},
		{"unknown key in both instances", "[[inputs.cfgtest_input]]\nbogus = 1\n[[inputs.cfgtest_input]]\nbogus = 2\n",
			[]string{`flowline.toml:2: inputs.cfgtest_input: unknown key "bogus"`, `flowline.toml:4: inputs.cfgtest_input: unknown key "bogus"`}},
		{"unknown nested key", "[[outputs.cfgtest_output]]\n[outputs.cfgtest_output.lifecycle]\ncompress_after = \"1d\"\nbogus = 1\n",
			[]string{`flowline.toml:4: outputs.cfgtest_output.lifecycle: unknown key "bogus" (known: compress_after, delete_after)`}},
		{"unknown key in array of tables", "[[outputs.cfgtest_output]]\n[[outputs.cfgtest_output.rollup]]\nname = \"a\"\n[[outputs.cfgtest_output.rollup]]\nname = \"b\"\nbinn = \"1h\"\n",
			[]string{`flowline.toml:6: outputs.cfgtest_output.rollup: unknown key "binn" (known: bin, name)`}},
		{"unknown nested table", "[[outputs.cfgtest_output]]\nformat = \"json\"\n[outputs.cfgtest_output.lifecyle]\ndelete_after = \"1d\"\n",
			[]string{`flowline.toml:3: outputs.cfgtest_output: unknown key "lifecyle" (known: alias, format, lifecycle, options, rollup)`}},
		{"unknown inline table key", "[[outputs.cfgtest_output]]\nlifecycle = { bogus = 1 }\n",
			[]string{`flowline.toml:2: outputs.cfgtest_output.lifecycle: unknown key "bogus"`}},
		{"unknown plugin", "[agent]\n\n[[outputs.mysq]]\nhost = \"x\"\n",
			[]string{`flowline.toml:3: unknown plugin "outputs.mysq" (known outputs: `, "cfgtest_output"}},
		{"unknown top-level table", "[agent]\n[global_tags]\nx = \"y\"\n",
			[]string{`flowline.toml:2: unknown table "global_tags"`}},
		{"unknown top-level key", "\nfoo = 1\n",
			[]string{`flowline.toml:2: unknown key "foo"`}},
		{"unknown agent key", "[agent]\n  log_levl = \"debug\"\n",
			[]string{`flowline.toml:2: agent: unknown key "log_levl" (known: batch_size, channel_batches, data_dir, log_level, max_buffer, metrics_address, pprof, shutdown_timeout)`}},
		{"bad log level", "[agent]\nbatch_size = 3\nlog_level = \"verbose\"\n",
			[]string{`flowline.toml:3: agent.log_level: invalid log level "verbose" (use debug, info, warn, error)`}},
		{"bad channel_batches", "[agent]\nchannel_batches = 0\n",
			[]string{`flowline.toml:2: agent.channel_batches: must be greater than 0`}},
		{"bad batch_size", "[agent]\n\nbatch_size = -1\n",
			[]string{`flowline.toml:3: agent.batch_size: must be greater than 0`}},
		{"agent type mismatch", "[agent]\nbatch_size = \"big\"\n",
			[]string{`flowline.toml:2: agent.batch_size: incompatible types: TOML value has type string; destination has type integer`}},
		{"bad duration", "[[processors.cfgtest_aggregate]]\nprimitives = [\"src_host\"]\nhistory = \"10 minutes\"\n",
			[]string{`flowline.toml:3: processors.cfgtest_aggregate.history: invalid duration "10 minutes": `}},
		{"bad duration in second instance", "[[processors.cfgtest_aggregate]]\nhistory = \"1h\"\n[[processors.cfgtest_aggregate]]\nhistory = \"1x\"\n",
			[]string{`flowline.toml:4: processors.cfgtest_aggregate.history: invalid duration "1x"`}},
		{"bad size", "[[inputs.cfgtest_input]]\n\n\nread_buffer = \"32 parsecs\"\n",
			[]string{`flowline.toml:4: inputs.cfgtest_input.read_buffer: invalid size "32 parsecs"`}},
		{"int for string", "[[inputs.cfgtest_input]]\naddress = 9995\n",
			[]string{`flowline.toml:2: inputs.cfgtest_input.address: incompatible types: TOML value has type int64; destination has type string`}},
		{"no spurious unknown keys after a decode error", "[[inputs.cfgtest_input]]\nsockets = \"two\"\naddress = \"x\"\nread_buffer = \"1k\"\n[[inputs.cfgtest_input]]\naddress = \"y\"\n",
			[]string{`flowline.toml:2: inputs.cfgtest_input.sockets: incompatible types`, "!unknown key"}},
		{"string for int", "[[inputs.cfgtest_input]]\naddress = \"x\"\nsockets = \"two\"\n",
			[]string{`flowline.toml:3: inputs.cfgtest_input.sockets: incompatible types`}},
		{"bad value in nested array of tables", "[[outputs.cfgtest_output]]\n[[outputs.cfgtest_output.rollup]]\nname = \"a\"\nbin = \"1h\"\n[[outputs.cfgtest_output.rollup]]\nname = \"b\"\nbin = \"soon\"\n",
			[]string{`flowline.toml:7: outputs.cfgtest_output.rollup.bin: invalid duration "soon"`}},
		{"validate", "[[processors.cfgtest_aggregate]]\n  refresh = \"0s\"\n",
			[]string{`flowline.toml:1: processors.cfgtest_aggregate: refresh must be greater than 0`}},
		{"alias not a string", "[[inputs.cfgtest_input]]\nalias = 3\n",
			[]string{`flowline.toml:2: inputs.cfgtest_input.alias: must be a string`}},
		{"plugin not a table", "[inputs]\ncfgtest_input = 3\n",
			[]string{`flowline.toml:2: inputs.cfgtest_input: must be a table`}},
		{"kind not a table", "inputs = 3\n",
			[]string{`flowline.toml:1: inputs: must be a table of plugins`}},
		{"unset env", "[agent]\n# ${NOT_HERE_IN_COMMENT}\ndata_dir = \"${CFGTEST_UNSET_VAR}\"\n",
			[]string{`flowline.toml:3: environment variable "CFGTEST_UNSET_VAR" is not set`}},
		{"several errors sorted by line", "[agent]\nlog_level = \"x\"\n[[inputs.cfgtest_input]]\nbogus = 1\n",
			[]string{"flowline.toml:2: agent.log_level", "\nflowline.toml:4: inputs.cfgtest_input: unknown key \"bogus\""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("flowline.toml", []byte(tc.src))
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			for _, w := range tc.want {
				if not, ok := strings.CutPrefix(w, "!"); ok {
					if strings.Contains(err.Error(), not) {
						t.Errorf("error\n  %v\nmust not contain %q", err, not)
					}
					continue
				}
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\nlacks\n  %s", err, w)
				}
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "flowline.toml" || ce.Line == 0 {
				t.Errorf("error is not a located *Error: %#v", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "flowline.toml:") {
					t.Errorf("error line %q does not start with file:line", line)
				}
			}
		})
	}
}

func TestSyntaxErrorKeepsColumn(t *testing.T) {
	_, err := Parse("f.toml", []byte("[agent]\nbatch_size = = 3\n"))
	var ce *Error
	if !errors.As(err, &ce) || ce.Line != 2 || ce.Col == 0 {
		t.Fatalf("err = %v (%#v)", err, ce)
	}
}

func TestEnvSubstitution(t *testing.T) {
	t.Setenv("CFGTEST_ADDR", "10.0.0.1:9995")
	t.Setenv("CFGTEST_EMPTY", "")
	t.Setenv("CFGTEST_SOCKETS", "3")
	cfg := mustParse(t, `
# ${CFGTEST_NOT_SET} in a comment is left alone
[agent]
  data_dir = "${CFGTEST_DIR:-/tmp/flowline}" # trailing ${ALSO_NOT_SET}
  log_level = "${CFGTEST_EMPTY:-warn}"
  metrics_address = "${CFGTEST_EMPTY}"

[[inputs.cfgtest_input]]
  address = "${CFGTEST_ADDR}"
  sockets = ${CFGTEST_SOCKETS}
  alias = '$literal and ${ not a ref'
`)
	if cfg.Agent.DataDir != "/tmp/flowline" || cfg.Agent.LogLevel != "warn" || cfg.Agent.MetricsAddress != "" {
		t.Errorf("agent = %+v", cfg.Agent)
	}
	in := cfg.Inputs[0].Plugin.(*testInput)
	if in.Address != "10.0.0.1:9995" || in.Sockets != 3 {
		t.Errorf("input = %+v", *in)
	}
	if cfg.Inputs[0].Alias != "$literal and ${ not a ref" {
		t.Errorf("alias = %q", cfg.Inputs[0].Alias)
	}
}

func TestEnvMultilineStringsAndComments(t *testing.T) {
	t.Setenv("CFGTEST_X", "x")
	got, err := substituteEnv("f", "a = \"\"\"\n# ${CFGTEST_X}\n\"\"\" # ${NOPE}\nb = '#' # ${NOPE}\nc = \"\\\"#${CFGTEST_X}\"\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "a = \"\"\"\n# x\n\"\"\" # ${NOPE}\nb = '#' # ${NOPE}\nc = \"\\\"#x\"\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.toml")
	if err := os.WriteFile(path, []byte("[[inputs.cfgtest_input]]\nbogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":2: ") {
		t.Errorf("err = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil {
		t.Error("no error for a missing file")
	}
}

func TestLineIndexSkipsMultilineValues(t *testing.T) {
	src := `[[outputs.cfgtest_output]]
format = """
[[inputs.cfgtest_input]]
bogus = 1
"""
options = { a = [
  1,
  2 ] }
rollup = [
  { name = "x" },
]
formt = "x"
`
	_, err := Parse("flowline.toml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), `flowline.toml:12: outputs.cfgtest_output: unknown key "formt"`) {
		t.Errorf("err = %v", err)
	}
}

func TestTOMLIntegersForDurationAndSize(t *testing.T) {
	cfg := mustParse(t, "[[inputs.cfgtest_input]]\nread_buffer = 65536\n[[processors.cfgtest_aggregate]]\nhistory = 600\n")
	if got := cfg.Inputs[0].Plugin.(*testInput).ReadBuffer; got != 65536 {
		t.Errorf("read_buffer = %d", got)
	}
	if got := cfg.Processors[0].Plugin.(*testAggregate).History; got != core.Duration(10*time.Minute) {
		t.Errorf("history = %v", got)
	}
}

func TestSampleConfig(t *testing.T) {
	s := SampleConfig()
	for _, want := range []string{"[agent]", "## inputs.cfgtest_input\n" + inputSample, "## processors.cfgtest_aggregate\n", aggregateSample, "## outputs.cfgtest_output\n", outputSample} {
		if !strings.Contains(s, want) {
			t.Errorf("sample lacks %q", want)
		}
	}
	if strings.Index(s, "INPUTS") > strings.Index(s, "PROCESSORS") || strings.Index(s, "PROCESSORS") > strings.Index(s, "OUTPUTS") {
		t.Error("kinds are out of order")
	}
	cfg, err := Parse("sample.toml", []byte(s))
	if err != nil {
		t.Fatalf("the sample does not parse: %v\n%s", err, s)
	}
	if cfg.Agent != DefaultAgent() {
		t.Errorf("sample agent = %+v, want the defaults", cfg.Agent)
	}
	if len(cfg.Inputs) == 0 || len(cfg.Processors) == 0 || len(cfg.Outputs) == 0 {
		t.Errorf("sample has %d/%d/%d plugins", len(cfg.Inputs), len(cfg.Processors), len(cfg.Outputs))
	}
}
