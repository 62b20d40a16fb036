// Package registry maps plugin kinds and names to factories. Plugins register
// themselves from init(); the engine and the config loader look them up.
package registry

import (
	"fmt"
	"sort"
	"sync"
)

// Kind is a plugin kind: the middle word of a config table ([[inputs.netflow]]).
type Kind string

// The plugin kinds.
const (
	Inputs     Kind = "inputs"
	Processors Kind = "processors"
	Outputs    Kind = "outputs"
)

// Factory returns a new plugin value with its defaults set. The value is also
// the plugin's configuration: the config loader decodes the TOML table into it.
type Factory func() any

// Plugin describes one registered plugin.
type Plugin struct {
	Kind    Kind
	Name    string
	Factory Factory
	// Sample is the plugin's sample.toml: its config table with every key
	// documented ("##" for prose, "#" for a commented default).
	Sample string
}

var (
	mu      sync.RWMutex
	plugins = map[Kind]map[string]Plugin{}
)

// Register adds a plugin. Registering the same kind and name twice panics: it
// is a programming error that must fail at start-up.
func Register(kind Kind, name string, sample string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	switch kind {
	case Inputs, Processors, Outputs:
	default:
		panic(fmt.Sprintf("registry: unknown plugin kind %q", kind))
	}
	if plugins[kind] == nil {
		plugins[kind] = map[string]Plugin{}
	}
	if _, dup := plugins[kind][name]; dup {
		panic(fmt.Sprintf("registry: %s.%s registered twice", kind, name))
	}
	plugins[kind][name] = Plugin{Kind: kind, Name: name, Factory: f, Sample: sample}
}

// Lookup finds a registered plugin.
func Lookup(kind Kind, name string) (Plugin, bool) {
	mu.RLock()
	defer mu.RUnlock()
	p, ok := plugins[kind][name]
	return p, ok
}

// Names lists the registered plugin names of a kind, sorted.
func Names(kind Kind) []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(plugins[kind]))
	for n := range plugins[kind] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
