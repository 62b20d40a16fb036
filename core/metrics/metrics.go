// Package metrics holds Flowline's self-metrics: a Prometheus registry, the
// counters the engine's wrappers keep for every plugin, and the HTTP server
// for /metrics and /healthz.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is the process's metric registry with the per-plugin metric families.
type Registry struct {
	reg *prometheus.Registry

	received *prometheus.CounterVec
	emitted  *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	buffered *prometheus.GaugeVec

	apiMu sync.RWMutex
	apis  map[string]http.Handler
}

// New creates a registry with Go runtime and process collectors.
func New() *Registry {
	labels := []string{"kind", "plugin", "alias"}
	r := &Registry{
		reg:  prometheus.NewRegistry(),
		apis: map[string]http.Handler{},
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowline", Name: "plugin_received_total",
			Help: "Items (packets or records) a plugin received.",
		}, labels),
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowline", Name: "plugin_emitted_total",
			Help: "Items (packets or records) a plugin passed on or wrote.",
		}, labels),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowline", Name: "plugin_dropped_total",
			Help: "Items lost at a plugin: pipeline full, write given up, shutdown forced.",
		}, labels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowline", Name: "plugin_errors_total",
			Help: "Errors a plugin returned.",
		}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "flowline", Name: "plugin_batch_seconds",
			Help:    "Time a plugin took for one batch.",
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10),
		}, labels),
		buffered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "flowline", Name: "plugin_buffered_batches",
			Help: "Batches waiting in a plugin's input queue.",
		}, labels),
	}
	r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		r.received, r.emitted, r.dropped, r.errors, r.latency, r.buffered)
	return r
}

// Prometheus returns the underlying registry (for tests and for gathering).
func (r *Registry) Prometheus() *prometheus.Registry { return r.reg }

// Plugin is the set of counters the engine keeps for one plugin instance.
type Plugin struct {
	Received, Emitted, Dropped, Errors prometheus.Counter
	Latency                            prometheus.Observer
	Buffered                           prometheus.Gauge
	// Registerer registers the plugin's own domain metrics with its labels.
	Registerer prometheus.Registerer
}

// Plugin returns the counters for one plugin instance.
func (r *Registry) Plugin(kind, name, alias string) *Plugin {
	l := prometheus.Labels{"kind": kind, "plugin": name, "alias": alias}
	return &Plugin{
		Received:   r.received.With(l),
		Emitted:    r.emitted.With(l),
		Dropped:    r.dropped.With(l),
		Errors:     r.errors.With(l),
		Latency:    r.latency.With(l),
		Buffered:   r.buffered.With(l),
		Registerer: prometheus.WrapRegistererWith(l, r.reg),
	}
}

// Serve listens on addr and serves /metrics and /healthz until ctx ends
// (and /debug/pprof/ when withPprof is set). healthy reports the pipeline's
// state for /healthz.
func (r *Registry) Serve(ctx context.Context, addr string, withPprof bool, healthy func() error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/api/", r.serveAPI)
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener was closed under us; nothing left to serve
		}
	}()
	return nil
}

// Handle serves h at path (an exact path under /api/) on the metrics
// address; a nil h removes it. Registering a path again replaces its handler.
// The engine hands it to plugins as core.Env.HTTP (outputs.duckdb answers
// `flowline query` there while it holds its file).
func (r *Registry) Handle(path string, h http.Handler) {
	if !strings.HasPrefix(path, "/api/") {
		panic("metrics: plugin API paths start with /api/: " + path)
	}
	r.apiMu.Lock()
	defer r.apiMu.Unlock()
	if h == nil {
		delete(r.apis, path)
		return
	}
	r.apis[path] = h
}

func (r *Registry) serveAPI(w http.ResponseWriter, req *http.Request) {
	r.apiMu.RLock()
	h := r.apis[req.URL.Path]
	r.apiMu.RUnlock()
	if h == nil {
		http.NotFound(w, req)
		return
	}
	h.ServeHTTP(w, req)
}
