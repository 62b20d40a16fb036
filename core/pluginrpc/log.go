package pluginrpc

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// hostLogger bridges go-plugin's hclog logger to Flowline's slog logger, so
// that a plugin's log lines appear in Flowline's log tagged with the plugin's
// alias. Lines the plugin logs through the SDK arrive with their level;
// plain lines on its stderr (a panic, a print) arrive as messages without
// attributes, which go-plugin reports at debug level: they are logged at
// info (and panics at error) so that they are never hidden.
type hostLogger struct {
	hclog.Logger // a null logger for the methods not overridden
	log          *slog.Logger
	name         string
}

func newHostLogger(l *slog.Logger) hclog.Logger {
	return &hostLogger{Logger: hclog.NewNullLogger(), log: l}
}

func (h *hostLogger) emit(level slog.Level, msg string, args []any) {
	attrs := make([]any, 0, len(args))
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "timestamp" {
			continue // Flowline's log has its own time
		}
		attrs = append(attrs, args[i], args[i+1])
	}
	if h.name == "" && level == slog.LevelInfo {
		level = slog.LevelDebug // go-plugin's own chatter (mTLS set up, process exited)
	}
	h.log.Log(context.Background(), level, msg, attrs...)
}

func (h *hostLogger) Log(level hclog.Level, msg string, args ...any) {
	switch level {
	case hclog.Trace, hclog.Debug:
		h.Debug(msg, args...)
	case hclog.Warn:
		h.Warn(msg, args...)
	case hclog.Error:
		h.Error(msg, args...)
	default:
		h.Info(msg, args...)
	}
}

func (h *hostLogger) Trace(msg string, args ...any) { h.emit(slog.LevelDebug-4, msg, args) }

func (h *hostLogger) Debug(msg string, args ...any) {
	if len(args) == 0 && h.name != "" {
		h.emit(slog.LevelInfo, msg, nil) // a plain line on the plugin's stderr
		return
	}
	h.emit(slog.LevelDebug, msg, args)
}
func (h *hostLogger) Info(msg string, args ...any)  { h.emit(slog.LevelInfo, msg, args) }
func (h *hostLogger) Warn(msg string, args ...any)  { h.emit(slog.LevelWarn, msg, args) }
func (h *hostLogger) Error(msg string, args ...any) { h.emit(slog.LevelError, msg, args) }

func (h *hostLogger) IsTrace() bool { return false }
func (h *hostLogger) IsDebug() bool { return h.log.Enabled(context.Background(), slog.LevelDebug) }
func (h *hostLogger) IsInfo() bool  { return true }
func (h *hostLogger) IsWarn() bool  { return true }
func (h *hostLogger) IsError() bool { return true }

// GetLevel is trace so that go-plugin hands every line over; the slog
// handler decides what is written.
func (h *hostLogger) GetLevel() hclog.Level { return hclog.Trace }

func (h *hostLogger) With(args ...any) hclog.Logger {
	return &hostLogger{Logger: h.Logger, log: h.log.With(args...), name: h.name}
}

// Named marks the logger that carries the plugin's own lines (go-plugin
// names it after the binary); the name itself stays out of the log: the
// alias already says which plugin spoke.
func (h *hostLogger) Named(name string) hclog.Logger {
	return &hostLogger{Logger: h.Logger, log: h.log, name: name}
}

func (h *hostLogger) ResetNamed(name string) hclog.Logger { return h.Named(name) }

func (h *hostLogger) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(nil), "", 0)
}

func (h *hostLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return lineWriter(func(s string) { h.emit(slog.LevelInfo, s, nil) })
}

type lineWriter func(string)

func (w lineWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			w(line)
		}
	}
	return len(p), nil
}

// StderrWriter logs each line written to it at info level: what a plugin
// prints on its stderr after the handshake (go-plugin carries it over gRPC).
func StderrWriter(l *slog.Logger) io.Writer {
	return lineWriter(func(s string) { l.Info(s) })
}

// PluginLogHandler is the slog handler a plugin process logs through: JSON
// lines in hclog's shape on stderr (@level, @message, @timestamp), which the
// host parses back into leveled, attributed log lines.
func PluginLogHandler(w io.Writer, level slog.Level) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				// go-plugin parses exactly this layout.
				a = slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.MessageKey:
				a.Key = "@message"
			case slog.LevelKey:
				a.Key = "@level"
				a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
			}
			return a
		},
	})
}
