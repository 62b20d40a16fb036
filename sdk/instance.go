package sdk

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/pluginrpc"
	pb "github.com/flowline/flowline/internal/pluginpb"
)

// configError is one problem with the config table, at a key.
type configError struct {
	key string
	msg string
}

func (e configError) Error() string {
	if e.key == "" {
		return e.msg
	}
	return e.key + ": " + e.msg
}

// newInstance makes a plugin from its factory and configures it the way
// Flowline configures an in-process plugin: the TOML table is decoded
// strictly into the value, then Validate and Init run. The errors are
// configError values.
func newInstance(factory func() any, configTOML string, env *core.Env) (any, []configError) {
	p := factory()
	if rv := reflect.ValueOf(p); rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, []configError{{msg: fmt.Sprintf("the plugin's factory returned %T, not a pointer to its configuration (a bug in the plugin)", p)}}
	}
	md, err := toml.Decode(configTOML, p)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, []configError{{key: pe.LastKey, msg: pe.Message}}
		}
		return nil, []configError{{msg: err.Error()}}
	}
	var errs []configError
	for _, k := range md.Undecoded() {
		errs = append(errs, configError{key: k.String(), msg: fmt.Sprintf("unknown key %q", k.String())})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if v, ok := p.(core.Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, []configError{{msg: err.Error()}}
		}
	}
	if i, ok := p.(core.Initializer); ok {
		if err := i.Init(env); err != nil {
			return nil, []configError{{msg: err.Error()}}
		}
	}
	return p, nil
}

// pluginEnv is the environment of a plugin process, from the host's request.
func pluginEnv(req *pb.InitRequest) *core.Env {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(req.LogLevel))); err != nil {
		level = slog.LevelInfo
	}
	env := core.NewEnv(req.Name, req.DataDir)
	env.Logger = slog.New(pluginrpc.PluginLogHandler(logOutput, level))
	env.Metrics = prometheus.NewRegistry()
	if req.BatchSize > 0 {
		env.BatchSize = int(req.BatchSize)
	}
	env.Primitives = req.Primitives
	return env
}
