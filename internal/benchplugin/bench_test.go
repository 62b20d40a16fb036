package benchplugin

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/pluginrpc"
	"github.com/flowline/flowline/internal/testbin"
	outext "github.com/flowline/flowline/plugins/outputs/external"
	procext "github.com/flowline/flowline/plugins/processors/external"
)

const batchSize = 8192

// records is an aggregated 5-tuple batch, as an aggregate emits.
func records() []core.Record {
	recs := make([]core.Record, batchSize)
	for i := range recs {
		r := &recs[i]
		r.Exporter = netip.MustParseAddr("192.0.2.1")
		r.SrcAddr = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		r.DstAddr = netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)})
		r.SrcPort, r.DstPort, r.Proto, r.TCPFlags = uint16(1024+i), 443, 6, 0x1b
		r.Packets, r.Bytes, r.Flows = uint64(1+i%50), uint64(64+i%50*1400), 1
		r.StampInserted, r.StampUpdated = 1_700_000_000e9, 1_700_000_060e9
		r.Present = core.FieldSrcAddr | core.FieldDstAddr | core.FieldSrcPort | core.FieldDstPort | core.FieldProto | core.FieldTCPFlags | core.FieldPackets | core.FieldBytes | core.FieldStamps
	}
	return recs
}

func batch(recs []core.Record) *core.Batch {
	b := core.NewBatch()
	b.Records = append(b.Records[:0], recs...)
	return b
}

// pluginBinary builds cmd/flowline-bench-plugin once.
func pluginBinary(b *testing.B) string {
	b.Helper()
	_, file, _, _ := runtime.Caller(0)
	out := filepath.Join(b.TempDir(), "flowline-bench-plugin")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/flowline-bench-plugin")
	cmd.Dir = filepath.Dir(file)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, msg)
	}
	return out
}

func perRecord(b *testing.B) {
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkOutputInProcess(b *testing.B) {
	recs := records()
	c := &Counter{}
	in := batch(recs)
	for b.Loop() {
		if err := c.Write(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
	perRecord(b)
}

func BenchmarkOutputExternal(b *testing.B) {
	bin := pluginBinary(b)
	recs := records()
	o := &outext.External{Spec: pluginrpc.DefaultSpec(), Consumes: "records"}
	o.Command = bin
	if err := o.Init(core.NewEnv("bench", b.TempDir())); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := o.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	defer o.Close(ctx)
	in := batch(recs)
	var lat time.Duration
	for b.Loop() {
		start := time.Now()
		if err := o.Write(ctx, in); err != nil {
			b.Fatal(err)
		}
		lat += time.Since(start)
	}
	perRecord(b)
	b.ReportMetric(float64(lat.Microseconds())/float64(b.N), "µs/batch")
}

func BenchmarkProcessorInProcess(b *testing.B) {
	recs := records()
	for b.Loop() {
		in := batch(recs)
		_ = (&Tagger{}).Process(context.Background(), in, func(out *core.Batch) { out.Release() })
	}
	perRecord(b)
}

func BenchmarkProcessorExternal(b *testing.B) {
	bin := pluginBinary(b)
	recs := records()
	p := &procext.External{Spec: pluginrpc.DefaultSpec()}
	p.Command, p.Args = bin, []string{"processor"}
	if err := p.Init(core.NewEnv("bench", b.TempDir())); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	defer p.Flush(ctx, func(out *core.Batch) { out.Release() })
	var got int
	for b.Loop() {
		in := batch(recs)
		if err := p.Process(ctx, in, func(out *core.Batch) { got += len(out.Records); out.Release() }); err != nil {
			b.Fatal(err)
		}
	}
	if got != b.N*batchSize {
		b.Fatalf("round trip returned %d records, sent %d", got, b.N*batchSize)
	}
	perRecord(b)
}

// TestIdleMemory reports the resident memory of an idle plugin process.
func TestIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a plugin process")
	}
	_, file, _, _ := runtime.Caller(0)
	out := filepath.Join(t.TempDir(), "flowline-bench-plugin")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/flowline-bench-plugin")
	cmd.Dir = filepath.Dir(file)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, msg)
	}
	o := &outext.External{Spec: pluginrpc.DefaultSpec(), Consumes: "records"}
	o.Command = out
	if err := o.Init(core.NewEnv("bench", t.TempDir())); err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	time.Sleep(500 * time.Millisecond)
	kids := testbin.Children(os.Getpid())
	if len(kids) == 0 {
		t.Fatal("no plugin process found")
	}
	for _, pid := range kids {
		status, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				t.Logf("idle plugin process %d: %s", pid, strings.Join(strings.Fields(line), " "))
			}
		}
	}
}
