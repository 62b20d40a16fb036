package benchplugin

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/pluginrpc"
	outext "github.com/flowline/flowline/plugins/outputs/external"
)

// A plugin that dies on every write is restarted for each attempt; after
// max_retries the batch is given up with a permanent error (the engine then
// drops and counts it), and every restart is counted.
func TestCrashLoopGivesUpAfterMaxRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a plugin process")
	}
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "flowline-bench-plugin")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/flowline-bench-plugin")
	cmd.Dir = filepath.Dir(file)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, msg)
	}
	o := &outext.External{Spec: pluginrpc.DefaultSpec(), Consumes: "records"}
	o.Command, o.Args, o.MaxRetries = bin, []string{"crash"}, 3
	env := core.NewEnv("crasher", t.TempDir())
	reg := prometheus.NewRegistry()
	env.Metrics = reg
	if err := o.Init(env); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := o.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	b := batch(records()[:10])
	defer b.Release()
	var err error
	attempts := 0
	for attempts < 10 {
		attempts++
		if err = o.Write(ctx, b); err == nil || core.IsPermanent(err) {
			break
		}
	}
	if err == nil || !core.IsPermanent(err) || attempts != 3 || !strings.Contains(err.Error(), "given up after 3 attempts") {
		t.Fatalf("after %d attempts: %v", attempts, err)
	}
	if v := counterValue(t, reg, "flowline_external_restarts_total"); v != 2 {
		t.Fatalf("restarts counted: %v, want 2 (one before each attempt after the first)", v)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s not registered", name)
	return 0
}
