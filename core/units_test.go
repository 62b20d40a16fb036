package core

import (
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"0s", 0, ""},
		{"0", 0, ""},
		{"30", 30 * time.Second, ""},
		{"1.5", 1500 * time.Millisecond, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"90d", 90 * 24 * time.Hour, ""},
		{"2w", 14 * 24 * time.Hour, ""},
		{"1w2d3h", (9*24 + 3) * time.Hour, ""},
		{"1.5d", 36 * time.Hour, ""},
		{"-5m", -5 * time.Minute, ""},
		{" 10s ", 10 * time.Second, ""},
		{"", 0, "empty"},
		{"10 minutes", 0, `unknown unit " minutes"`},
		{"10", 10 * time.Second, ""},
		{"10x", 0, `unknown unit "x"`},
		{"h", 0, "expected a number"},
		{"1h30", 0, "missing unit"},
		{"99999999999999d", 0, "out of range"},
	}
	for _, tc := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "invalid duration ") {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || time.Duration(d) != tc.want {
			t.Errorf("%q = %v, %v; want %v", tc.in, time.Duration(d), err, tc.want)
			continue
		}
		var back Duration
		if err := back.UnmarshalText([]byte(d.String())); err != nil || back != d {
			t.Errorf("%q: String %q does not round-trip: %v %v", tc.in, d.String(), back, err)
		}
	}
	if s := Duration(90 * 24 * time.Hour).String(); s != "90d" {
		t.Errorf("String = %q", s)
	}
	if s := Duration(90 * time.Minute).String(); s != "1h30m0s" {
		t.Errorf("String = %q", s)
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"1024", 1024, ""},
		{"0", 0, ""},
		{"512B", 512, ""},
		{"4k", 4096, ""},
		{"4K", 4096, ""},
		{"512KiB", 512 << 10, ""},
		{"32MiB", 32 << 20, ""},
		{"32 MiB", 32 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"16kB", 16000, ""},
		{"16MB", 16e6, ""},
		{"1GB", 1e9, ""},
		{"1.5GiB", 3 << 29, ""},
		{"8M", 8 << 20, ""},
		{"", 0, "empty"},
		{"-1", 0, "negative"},
		{"MiB", 0, "expected a number"},
		{"32 parsecs", 0, `unknown unit "parsecs"`},
		{"99999999TiB", 0, "out of range"},
	}
	for _, tc := range tests {
		var s Size
		err := s.UnmarshalText([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "invalid size ") {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || int64(s) != tc.want {
			t.Errorf("%q = %d, %v; want %d", tc.in, s, err, tc.want)
			continue
		}
		var back Size
		if err := back.UnmarshalText([]byte(s.String())); err != nil || back != s {
			t.Errorf("%q: String %q does not round-trip: %v %v", tc.in, s.String(), back, err)
		}
	}
	if got := Size(32 << 20).String(); got != "32MiB" {
		t.Errorf("String = %q", got)
	}
	if got := Size(16e6).String(); got != "16MB" {
		t.Errorf("String = %q", got)
	}
	if got := Size(1000001).String(); got != "1000001" {
		t.Errorf("String = %q", got)
	}
}
