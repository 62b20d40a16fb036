// Package config loads, validates and samples Flowline's TOML configuration.
//
// A configuration has an [agent] section and plugin tables in the Telegraf
// style: [[inputs.NAME]], [[processors.NAME]] and [[outputs.NAME]]. Each
// plugin table is decoded into the value its registry.Factory returns, so the
// factory's defaults survive for keys the file does not set. Loading is
// strict: unknown tables, unknown plugins, unknown keys and bad values are
// errors, and every error names the file, the line and the key.
//
// ${NAME} and ${NAME:-default} are replaced with environment variables in the
// raw text before it is parsed, except inside comments.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/registry"
)

// Agent is the [agent] section: settings of the process rather than of a
// plugin.
type Agent struct {
	// DataDir holds the templates file, the embedded store and the spool.
	DataDir string `toml:"data_dir"`
	// MetricsAddress is where /metrics and /healthz are served; "" turns
	// them off.
	MetricsAddress string `toml:"metrics_address"`
	// LogLevel is one of debug, info, warn and error.
	LogLevel string `toml:"log_level"`
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout core.Duration `toml:"shutdown_timeout"`
	// ChannelBatches is the capacity, in batches, of the queue between two
	// stages (at most 4 between two processors; see core/engine).
	ChannelBatches int `toml:"channel_batches"`
	// BatchSize is the number of items in a full batch.
	BatchSize int `toml:"batch_size"`
	// Pprof serves Go's profiler under /debug/pprof/ on the metrics address.
	Pprof bool `toml:"pprof"`
	// MaxBuffer is the memory budget of the pipeline: the bytes of batches
	// queued between stages plus the early-data queue may take an eighth
	// of it (beyond, inputs drop, count and log) and the Go heap nine
	// sixteenths (see core/engine).
	MaxBuffer core.Size `toml:"max_buffer"`
}

// LogLevels lists the values agent.log_level accepts.
var LogLevels = []string{"debug", "info", "warn", "error"}

// DefaultAgent returns the agent settings used for keys the file leaves out.
func DefaultAgent() Agent {
	return Agent{
		DataDir:         "./data",
		MetricsAddress:  "127.0.0.1:9108",
		LogLevel:        "info",
		ShutdownTimeout: core.Duration(30e9),
		ChannelBatches:  64,
		BatchSize:       1024,
		MaxBuffer:       256 << 20,
	}
}

// PluginConfig is one plugin table of the file.
type PluginConfig struct {
	Kind registry.Kind
	Name string
	// Alias is the optional alias key; the loader consumes it and does not
	// pass it to the plugin.
	Alias string
	// File and Line locate the table's header.
	File string
	Line int
	// Plugin is the value the factory returned, with the table decoded into
	// it.
	Plugin any
}

// DisplayName returns the alias if one is set, else the plugin name.
func (p PluginConfig) DisplayName() string {
	if p.Alias != "" {
		return p.Alias
	}
	return p.Name
}

// Where locates the plugin for messages: "file.toml:12: inputs.netflow".
func (p PluginConfig) Where() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s.%s", p.File, p.Line, p.Kind, p.Name)
	}
	return fmt.Sprintf("%s: %s.%s", p.File, p.Kind, p.Name)
}

// Location says where a plugin's table is, for a plugin that checks parts of
// its table later than the loader does: an external plugin validates its
// `config` sub-table in its own process and reports its errors with the
// file and line of each key.
type Location struct {
	File  string
	Line  int
	Table string // "outputs.external"

	keyLine func(path []string) int
}

// Error returns a configuration error about the key path inside the table
// (path nil for the table itself), located at that key's line.
func (l Location) Error(path []string, msg string) *Error {
	line := l.Line
	if l.keyLine != nil && len(path) > 0 {
		if n := l.keyLine(path); n > 0 {
			line = n
		}
	}
	key := l.Table
	if len(path) > 0 {
		key += "." + strings.Join(path, ".")
	}
	return &Error{File: l.File, Line: line, Key: key, Msg: msg}
}

// Locatable is implemented by plugins that want their table's Location; the
// loader calls SetLocation after decoding the table.
type Locatable interface {
	SetLocation(Location)
}

// Config is a loaded configuration. Within each kind, plugins are in the
// order of their tables in the file.
type Config struct {
	File       string
	Agent      Agent
	Inputs     []PluginConfig
	Processors []PluginConfig
	Outputs    []PluginConfig
}

// Error is one configuration error. Parse and Load return one *Error, or
// several joined with errors.Join (one per line), sorted by line; use
// errors.As to get the first.
type Error struct {
	File string
	Line int // 0 when unknown
	Col  int // set for TOML syntax errors only
	// Key is the dotted key the error is about ("inputs.netflow.address"),
	// or the plugin ("inputs.netflow"), or "" for the whole file.
	Key string
	Msg string
}

// Error formats the error as "file:line: key: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteString(":" + strconv.Itoa(e.Col))
		}
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and parses the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

var kinds = []registry.Kind{registry.Inputs, registry.Processors, registry.Outputs}

// Parse parses a configuration. file is the name used in errors.
func Parse(file string, data []byte) (*Config, error) {
	text, err := substituteEnv(file, string(data))
	if err != nil {
		return nil, err
	}
	var top map[string]toml.Primitive
	md, err := toml.Decode(text, &top)
	if err != nil {
		return nil, syntaxError(file, err)
	}
	var raw map[string]any
	if _, err := toml.Decode(text, &raw); err != nil {
		return nil, syntaxError(file, err)
	}
	l := &loader{
		file: file,
		md:   &md,
		idx:  indexLines(text),
		cfg:  &Config{File: file, Agent: DefaultAgent()},
	}

	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		return l.idx.line([]string{names[i]}) < l.idx.line([]string{names[j]})
	})
	for _, name := range names {
		switch name {
		case "agent":
			l.agent(raw[name], top[name])
		case string(registry.Inputs), string(registry.Processors), string(registry.Outputs):
			l.kind(registry.Kind(name), raw[name], top[name])
		default:
			what := "table"
			if _, ok := raw[name].(map[string]any); !ok {
				what = "key"
			}
			l.errorf(l.idx.line([]string{name}), "", "unknown %s %q (known: agent, inputs, processors, outputs)", what, name)
		}
	}
	l.undecoded()
	if len(l.errs) > 0 {
		sort.SliceStable(l.errs, func(i, j int) bool { return l.errs[i].Line < l.errs[j].Line })
		return nil, joinErrors(l.errs)
	}
	for _, pcs := range []*[]PluginConfig{&l.cfg.Inputs, &l.cfg.Processors, &l.cfg.Outputs} {
		sort.SliceStable(*pcs, func(i, j int) bool { return (*pcs)[i].Line < (*pcs)[j].Line })
	}
	return l.cfg, nil
}

// joinErrors joins errors the way errors.Join does, keeping a single error
// as it is so that its type shows.
func joinErrors[E error](errs []E) error {
	if len(errs) == 1 {
		return errs[0]
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}

func syntaxError(file string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: file, Line: pe.Position.Line, Col: pe.Position.Col, Msg: pe.Message}
	}
	return &Error{File: file, Msg: err.Error()}
}

// instance is one decoded plugin table, kept to attribute undecoded keys.
type instance struct {
	plugin any
	kind   registry.Kind
	name   string
	base   []string // indexed path of the table
	node   map[string]any
}

type loader struct {
	file      string
	md        *toml.MetaData
	idx       *lineIndex
	cfg       *Config
	errs      []*Error
	agentNode map[string]any
	instances []instance
}

func (l *loader) errorf(line int, key, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: l.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) agent(raw any, prim toml.Primitive) {
	node, ok := raw.(map[string]any)
	if !ok {
		l.errorf(l.idx.line([]string{"agent"}), "agent", "must be a table ([agent])")
		return
	}
	l.agentNode = node
	if err := l.md.PrimitiveDecode(prim, &l.cfg.Agent); err != nil {
		l.decodeError([]string{"agent"}, node, reflect.TypeFor[Agent](), 1, err)
		return
	}
	a := &l.cfg.Agent
	line := func(key string) int { return l.keyLine([]string{"agent"}, node, []string{key}) }
	if !slices.Contains(LogLevels, a.LogLevel) {
		l.errorf(line("log_level"), "agent.log_level", "invalid log level %q (use %s)", a.LogLevel, strings.Join(LogLevels, ", "))
	}
	if a.ChannelBatches <= 0 {
		l.errorf(line("channel_batches"), "agent.channel_batches", "must be greater than 0, got %d", a.ChannelBatches)
	}
	if a.BatchSize <= 0 {
		l.errorf(line("batch_size"), "agent.batch_size", "must be greater than 0, got %d", a.BatchSize)
	}
	if a.MaxBuffer < 16<<20 {
		l.errorf(line("max_buffer"), "agent.max_buffer", "at least 16MiB, got %s", a.MaxBuffer)
	}
	if a.ShutdownTimeout < 0 {
		l.errorf(line("shutdown_timeout"), "agent.shutdown_timeout", "must not be negative, got %s", a.ShutdownTimeout)
	}
}

func (l *loader) kind(kind registry.Kind, raw any, prim toml.Primitive) {
	k := string(kind)
	kindNode, ok := raw.(map[string]any)
	if !ok {
		l.errorf(l.idx.line([]string{k}), k, "must be a table of plugins ([[%s.NAME]])", k)
		return
	}
	var prims map[string]toml.Primitive
	if err := l.md.PrimitiveDecode(prim, &prims); err != nil {
		l.errorf(l.idx.line([]string{k}), k, "%v", err)
		return
	}
	names := make([]string, 0, len(kindNode))
	for name := range kindNode {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		plugin, ok := registry.Lookup(kind, name)
		if !ok {
			line := l.idx.nearest([]string{k, name + "#0"})
			if line == 0 {
				line = l.idx.nearest([]string{k, name})
			}
			known := registry.Names(kind)
			if len(known) == 0 {
				l.errorf(line, "", "unknown plugin \"%s.%s\" (no %s are registered)", k, name, k)
			} else {
				l.errorf(line, "", "unknown plugin \"%s.%s\" (known %s: %s)", k, name, k, strings.Join(known, ", "))
			}
			continue
		}
		switch v := kindNode[name].(type) {
		case []map[string]any: // [[kind.name]], once or more
			var ps []toml.Primitive
			if err := l.md.PrimitiveDecode(prims[name], &ps); err != nil {
				l.errorf(l.idx.nearest([]string{k, name}), k+"."+name, "%v", err)
				continue
			}
			for i := range v {
				l.plugin(plugin, []string{k, name + "#" + strconv.Itoa(i)}, v[i], ps[i])
			}
		case map[string]any: // [kind.name], a single table
			l.plugin(plugin, []string{k, name}, v, prims[name])
		case []any: // kind.name = [{...}, {...}], inline
			var ps []toml.Primitive
			if err := l.md.PrimitiveDecode(prims[name], &ps); err != nil {
				l.errorf(l.idx.nearest([]string{k, name}), k+"."+name, "%v", err)
				continue
			}
			for i := range v {
				node, ok := v[i].(map[string]any)
				if !ok {
					l.errorf(l.idx.nearest([]string{k, name}), k+"."+name, "must be a table ([[%s.%s]]), got %T", k, name, v[i])
					break
				}
				l.plugin(plugin, []string{k, name}, node, ps[i])
			}
		default:
			l.errorf(l.idx.nearest([]string{k, name}), k+"."+name, "must be a table ([[%s.%s]]), got %s", k, name, tomlTypeName(v))
		}
	}
}

func (l *loader) plugin(p registry.Plugin, base []string, node map[string]any, prim toml.Primitive) {
	pc := PluginConfig{Kind: p.Kind, Name: p.Name, File: l.file, Line: l.idx.nearest(base)}
	id := string(p.Kind) + "." + p.Name
	if a, ok := node["alias"]; ok {
		s, ok := a.(string)
		if !ok {
			l.errorf(l.keyLine(base, node, []string{"alias"}), id+".alias", "must be a string, got %s", tomlTypeName(a))
		}
		pc.Alias = s
	}
	val := p.Factory()
	if rv := reflect.ValueOf(val); rv.Kind() != reflect.Pointer || rv.IsNil() {
		l.errorf(pc.Line, id, "plugin factory returned %T, not a pointer (a bug in the plugin)", val)
		return
	}
	pc.Plugin = val
	var list *[]PluginConfig
	switch p.Kind {
	case registry.Inputs:
		list = &l.cfg.Inputs
	case registry.Processors:
		list = &l.cfg.Processors
	default:
		list = &l.cfg.Outputs
	}
	*list = append(*list, pc)
	ok := true
	if err := l.md.PrimitiveDecode(prim, val); err != nil {
		l.decodeError(base, node, reflect.TypeOf(val), 2, err)
		ok = false
	}
	l.instances = append(l.instances, instance{plugin: val, kind: p.Kind, name: p.Name, base: base, node: node})
	if loc, isLoc := val.(Locatable); ok && isLoc {
		loc.SetLocation(Location{File: l.file, Line: pc.Line, Table: id, keyLine: func(path []string) int { return l.keyLine(base, node, path) }})
	}
	if v, isV := val.(core.Validator); ok && isV {
		if err := v.Validate(); err != nil {
			l.errs = append(l.errs, &Error{File: l.file, Line: pc.Line, Key: id, Msg: err.Error()})
		}
	}
}

var lastKeyRE = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key ("(?:[^"\\]|\\.)*")\): (?s:(.*))$`)

// decodeError reports an error from PrimitiveDecode. prefix is the number of
// components of the error's key that name the table (1 for agent, 2 for
// kind.name); the rest locate the key inside node.
func (l *loader) decodeError(base []string, node map[string]any, typ reflect.Type, prefix int, err error) {
	keyStr, msg := "", err.Error()
	var pe toml.ParseError
	if errors.As(err, &pe) {
		keyStr, msg = pe.LastKey, pe.Message
	} else if m := lastKeyRE.FindStringSubmatch(msg); m != nil {
		if k, uerr := strconv.Unquote(m[1]); uerr == nil {
			keyStr, msg = k, m[2]
		}
	}
	comps, _ := parseKeyPath(keyStr)
	key := strings.Join(comps, ".")
	var rest []string
	if len(comps) > prefix {
		rest = comps[prefix:]
	}
	if key == "" {
		key = strings.Join(stripIndex(base), ".")
	}
	l.errorf(l.valueLine(base, node, typ, rest), key, "%s", msg)
}

func stripIndex(p []string) []string {
	out := make([]string, len(p))
	for i, c := range p {
		out[i], _, _ = strings.Cut(c, "#")
	}
	return out
}

// keyLine finds the line of the key rest inside the table at base, whose
// decoded content is node. Arrays of tables are followed into the first
// element that has the rest of the key. When the key itself has no known
// line (an inline table, say), the closest enclosing key or header's is used.
func (l *loader) keyLine(base []string, node map[string]any, rest []string) int {
	return l.valueLine(base, node, nil, rest)
}

// valueLine is keyLine for a value that failed to decode into typ, the Go
// type of node. In an array of tables it picks the first element that fails
// to decode on its own (the decoder goes through them in order), falling
// back to the first element that has the key.
func (l *loader) valueLine(base []string, node map[string]any, typ reflect.Type, rest []string) int {
	p := append([]string(nil), base...)
	cur := any(node)
	for i, c := range rest {
		m, ok := cur.(map[string]any)
		if !ok {
			p = append(p, rest[i:]...)
			break
		}
		v := m[c]
		if typ != nil {
			if t := elemType(typ); t.Kind() == reflect.Struct {
				typ, _ = findField(t, c)
			} else {
				typ = nil
			}
		}
		if arr, ok := v.([]map[string]any); ok && i+1 < len(rest) {
			j := -1
			if typ != nil {
				for k := range arr {
					if failsAlone(arr[k], elemType(typ)) {
						j = k
						break
					}
				}
			}
			for k := range arr {
				if j < 0 && hasPath(arr[k], rest[i+1:]) {
					j = k
				}
			}
			j = max(j, 0)
			p = append(p, c+"#"+strconv.Itoa(j))
			if len(arr) > 0 {
				cur = arr[j]
			} else {
				cur = nil
			}
			continue
		}
		p = append(p, c)
		cur = v
	}
	return l.idx.nearest(p)
}

// failsAlone reports whether the table m fails to decode into a new value of
// type t. It re-encodes m as TOML, since the toml package cannot decode from a
// map.
func failsAlone(m map[string]any, t reflect.Type) bool {
	if t == nil || t.Kind() != reflect.Struct {
		return false
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(m); err != nil {
		return false
	}
	_, err := toml.Decode(buf.String(), reflect.New(t).Interface())
	return err != nil
}

// hasPath reports whether the decoded TOML value has the key path, looking
// into every element of arrays of tables.
func hasPath(v any, path []string) bool {
	if len(path) == 0 {
		return true
	}
	switch t := v.(type) {
	case map[string]any:
		next, ok := t[path[0]]
		return ok && hasPath(next, path[1:])
	case []map[string]any:
		for _, e := range t {
			if hasPath(e, path) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if hasPath(e, path) {
				return true
			}
		}
	}
	return false
}

// undecoded reports every key that no Go field took.
func (l *loader) undecoded() {
	und := l.md.Undecoded()
	set := make(map[string]bool, len(und))
	for _, k := range und {
		set[k.String()] = true
	}
	seen := map[string]bool{}
	for _, k := range und {
		if len(k) > 1 && set[k[:len(k)-1].String()] {
			continue // the enclosing table is reported
		}
		switch k[0] {
		case "agent":
			if len(k) < 2 || l.agentNode == nil {
				continue
			}
			l.unknownKey([]string{"agent"}, l.agentNode, reflect.TypeFor[Agent](), k[1:], false, seen)
		case string(registry.Inputs), string(registry.Processors), string(registry.Outputs):
			if len(k) < 3 {
				continue
			}
			rest := k[2:]
			if len(rest) == 1 && rest[0] == "alias" {
				continue
			}
			for _, in := range l.instances {
				if string(in.kind) != k[0] || in.name != k[1] || !hasPath(in.node, rest) {
					continue
				}
				t := reflect.TypeOf(in.plugin)
				l.unknownKey(in.base, in.node, t, rest, true, seen)
			}
		}
	}
}

func (l *loader) unknownKey(base []string, node map[string]any, t reflect.Type, rest []string, plugin bool, seen map[string]bool) {
	line := l.keyLine(base, node, rest)
	table := strings.Join(append(stripIndex(base), rest[:len(rest)-1]...), ".")
	dedup := fmt.Sprintf("%d\x00%s\x00%s", line, table, rest[len(rest)-1])
	if seen[dedup] {
		return
	}
	seen[dedup] = true
	known, open := knownKeys(t, rest[:len(rest)-1])
	if open {
		return
	}
	leaf := rest[len(rest)-1]
	for _, k := range known {
		if strings.EqualFold(k, leaf) {
			// A known key left undecoded because decoding stopped at an
			// earlier error, which is already reported.
			return
		}
	}
	if plugin && len(rest) == 1 {
		known = append(known, "alias")
	}
	sort.Strings(known)
	msg := fmt.Sprintf("unknown key %q", rest[len(rest)-1])
	if len(known) > 0 {
		msg += " (known: " + strings.Join(known, ", ") + ")"
	}
	l.errorf(line, table, "%s", msg)
}

// knownKeys lists the keys the Go type at path (inside t) decodes. open is
// true when that place takes any key (a map or an interface) or cannot be
// determined.
func knownKeys(t reflect.Type, path []string) (known []string, open bool) {
	if t == nil {
		return nil, true
	}
	for _, c := range path {
		t = elemType(t)
		switch t.Kind() {
		case reflect.Struct:
			f, ok := findField(t, c)
			if !ok {
				return nil, true
			}
			t = f
		case reflect.Map:
			t = t.Elem()
		default:
			return nil, true
		}
	}
	t = elemType(t)
	if t.Kind() != reflect.Struct {
		return nil, true
	}
	return fieldKeys(t), false
}

func elemType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	return t
}

type fieldKey struct {
	name string
	typ  reflect.Type
}

func structKeys(t reflect.Type) []fieldKey {
	var out []fieldKey
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" && f.Anonymous {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, structKeys(ft)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, fieldKey{name, f.Type})
	}
	return out
}

func fieldKeys(t reflect.Type) []string {
	var names []string
	for _, f := range structKeys(t) {
		names = append(names, f.name)
	}
	return names
}

func findField(t reflect.Type, key string) (reflect.Type, bool) {
	fields := structKeys(t)
	for _, f := range fields {
		if f.name == key {
			return f.typ, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, key) {
			return f.typ, true
		}
	}
	return nil, false
}

func tomlTypeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}
