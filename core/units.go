package core

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that decodes from TOML. It accepts Go duration
// strings ("1h30m", "250ms", "0s"), two extra units, "d" (24 hours) and "w"
// (7 days), in any combination ("90d", "1w2d12h"), and a bare number of
// seconds, given either as a TOML integer (30) or as a string ("30").
type Duration time.Duration

const (
	day  = 24 * time.Hour
	week = 7 * day
)

var durationUnits = map[string]float64{
	"ns": float64(time.Nanosecond),
	"us": float64(time.Microsecond),
	"µs": float64(time.Microsecond),
	"μs": float64(time.Microsecond),
	"ms": float64(time.Millisecond),
	"s":  float64(time.Second),
	"m":  float64(time.Minute),
	"h":  float64(time.Hour),
	"d":  float64(day),
	"w":  float64(week),
}

// ParseDuration parses a duration in the syntax Duration accepts.
func ParseDuration(s string) (time.Duration, error) {
	d, err := parseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: %w", s, err)
	}
	return d, nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty value")
	}
	// A bare number is a number of seconds.
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64)/float64(time.Second) {
			return 0, errors.New("out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	neg := false
	switch s[0] {
	case '-':
		neg = true
		s = s[1:]
	case '+':
		s = s[1:]
	}
	var total float64
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("expected a number at %q (e.g. 30s, 10m, 1h30m, 90d)", s)
		}
		num, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("bad number %q", s[:i])
		}
		s = s[i:]
		j := 0
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		unit := s[:j]
		s = s[j:]
		if unit == "" {
			return 0, errors.New("missing unit after a number (use ns, us, ms, s, m, h, d or w)")
		}
		mult, ok := durationUnits[unit]
		if !ok {
			return 0, fmt.Errorf("unknown unit %q (use ns, us, ms, s, m, h, d or w)", unit)
		}
		total += num * mult
		if total > float64(math.MaxInt64) {
			return 0, errors.New("out of range")
		}
	}
	if neg {
		total = -total
	}
	return time.Duration(math.Round(total)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler; it writes String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String formats the duration so that UnmarshalText reads it back: whole days
// as "90d", anything else as time.Duration does ("1h30m0s").
func (d Duration) String() string {
	td := time.Duration(d)
	if td != 0 && td%day == 0 {
		return strconv.FormatInt(int64(td/day), 10) + "d"
	}
	return td.String()
}

// Duration returns the value as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// Size is a number of bytes that decodes from TOML. It accepts a bare number
// of bytes (a TOML integer 1024 or a string "1024"), IEC units that are powers
// of 1024 ("512KiB", "32MiB", "1GiB", "1TiB"), SI units that are powers of
// 1000 ("16kB", "16KB", "16MB", "1GB", "1TB") and single-letter units that,
// as in dd and ulimit, are powers of 1024 ("4k", "8M", "1g"). A "B" alone means
// bytes. Fractions are allowed ("1.5GiB"); negative sizes are not.
type Size int64

var sizeUnits = map[string]float64{
	"":    1,
	"b":   1,
	"k":   1 << 10,
	"m":   1 << 20,
	"g":   1 << 30,
	"t":   1 << 40,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
}

// ParseSize parses a size in the syntax Size accepts.
func ParseSize(s string) (int64, error) {
	v, err := parseSize(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	return v, nil
}

func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty value")
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || (i == 0 && (s[i] == '-' || s[i] == '+'))) {
		i++
	}
	if i == 0 {
		return 0, errors.New("expected a number (e.g. 1024, 512KiB, 32MiB, 1GiB, 16MB)")
	}
	num, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", s[:i])
	}
	if num < 0 {
		return 0, errors.New("negative size")
	}
	unit := strings.TrimSpace(s[i:])
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB or k, M, G, T)", unit)
	}
	v := num * mult
	if v >= float64(math.MaxInt64) {
		return 0, errors.New("out of range")
	}
	return int64(math.Round(v)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler; it writes String.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String formats the size so that UnmarshalText reads it back: in the largest
// IEC or SI unit that divides it ("32MiB", "16MB"), else as a number of bytes
// ("1000001").
func (s Size) String() string {
	v := int64(s)
	if v != 0 {
		for _, u := range []struct {
			n    int64
			name string
		}{{1 << 40, "TiB"}, {1e12, "TB"}, {1 << 30, "GiB"}, {1e9, "GB"}, {1 << 20, "MiB"}, {1e6, "MB"}, {1 << 10, "KiB"}, {1e3, "kB"}} {
			if v%u.n == 0 {
				return strconv.FormatInt(v/u.n, 10) + u.name
			}
		}
	}
	return strconv.FormatInt(v, 10)
}

// Int returns the size as an int, for buffer lengths.
func (s Size) Int() int { return int(s) }
