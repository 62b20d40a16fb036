package influxdb

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadTotals: whatever the totals file holds, loading it returns totals
// or an error, never panics, and what it returns saves back to the same
// totals.
func FuzzLoadTotals(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed")
	saveTotals(seed, 7e9, []total{{series: "flows,exporter=192.0.2.1", bin: 60e9, ts: 60e9, packets: 1, bytes: 2, flows: 3}})
	b, _ := os.ReadFile(seed)
	f.Add(b)
	f.Add([]byte(totalsMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "totals")
		os.WriteFile(path, data, 0o644)
		cutoff, ts, _, err := loadTotals(path)
		if err != nil {
			return
		}
		again := filepath.Join(t.TempDir(), "again")
		if err := saveTotals(again, cutoff, ts); err != nil {
			t.Fatal(err)
		}
		c2, ts2, _, err := loadTotals(again)
		if err != nil || c2 != cutoff || len(ts2) != len(ts) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
