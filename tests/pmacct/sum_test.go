package pmacct

import "testing"

// The comparison sums counters per key and keeps the raw value forms, so a
// number printed where nfacctd prints a string is a different key.
func TestSumLines(t *testing.T) {
	lines := []string{
		`{"event_type": "purge", "tcp_flags": "26", "stamp_inserted": "2026-11-28 03:28:00", "stamp_updated": "2026-11-28 03:28:47", "packets": 1, "bytes": 10}`,
		`{"event_type": "purge", "tcp_flags": "26", "stamp_inserted": "2026-11-28 03:28:00", "stamp_updated": "2026-11-28 03:28:49", "packets": 2, "bytes": 20}`,
		`{"event_type": "purge", "tcp_flags": 26, "stamp_inserted": "2026-11-28 03:28:00", "stamp_updated": "2026-11-28 03:28:49", "packets": 4, "bytes": 40}`,
	}
	sums, order := sumLines(t, "test", parseLines(t, "test", "json", lines), nil)
	if order != "event_type,tcp_flags,stamp_inserted,stamp_updated,packets,bytes" {
		t.Errorf("order %s", order)
	}
	str := `{"event_type": "purge", "stamp_inserted": "2026-11-28 03:28:00", "tcp_flags": "26"}`
	num := `{"event_type": "purge", "stamp_inserted": "2026-11-28 03:28:00", "tcp_flags": 26}`
	if len(sums) != 2 || sums[str] != (counters{3, 30, 0}) || sums[num] != (counters{4, 40, 0}) {
		t.Errorf("sums %v", sums)
	}
	csv := []string{"SRC_IP,TCP_FLAGS,PACKETS,FLOWS,BYTES", "10.0.0.1,26,1,1,10", "10.0.0.1,26,2,1,20"}
	sums, order = sumLines(t, "test", parseLines(t, "test", "csv", csv), nil)
	if order != "src_ip,tcp_flags,packets,flows,bytes" || sums[`{"src_ip": 10.0.0.1, "tcp_flags": 26}`] != (counters{3, 30, 2}) {
		t.Errorf("csv: %s %v", order, sums)
	}
}
