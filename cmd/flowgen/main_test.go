package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

func sink(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	return c.LocalAddr().String()
}

func TestBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-version", "7"}, "-version"},
		{[]string{"-flows-per-packet", "40", "-version", "5"}, "-flows-per-packet"},
		{[]string{"-ipv6-share", "2"}, "-ipv6-share"},
		{[]string{"-exporters", "1.2.3"}, "-exporters"},
		{[]string{"-sampling-rate", "x"}, "-sampling-rate"},
		{[]string{"-rate", "-5"}, "-rate"},
		{[]string{"-nope"}, "-nope"},
		{[]string{"-target", "", "-flows", "1"}, "-target"},
		{[]string{"-template-every", "0"}, "-template-every"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if code := run(context.Background(), c.args, &out, &errb); code != 1 {
			t.Errorf("%v: exit %d", c.args, code)
		}
		if !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: stderr %q does not name %s", c.args, errb.String(), c.want)
		}
		if out.Len() != 0 {
			t.Errorf("%v: stdout %q", c.args, out.String())
		}
	}
}

func TestJSON(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"-target", sink(t), "-version", "10", "-flows", "1000", "-sampling-rate", "100", "-json"}
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var m map[string]float64
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	for _, k := range []string{"packets", "flows", "flow_packets", "flow_bytes", "template_packets", "seconds", "flows_per_second", "expected_packets", "expected_bytes"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, out.String())
		}
	}
	if m["flows"] != 1000 || m["expected_packets"] != 100*m["flow_packets"] || m["expected_bytes"] != 100*m["flow_bytes"] {
		t.Errorf("totals %s", out.String())
	}
}

func TestInterrupt(t *testing.T) {
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	code := run(ctx, []string{"-target", sink(t), "-version", "9", "-rate", "5000"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "sent ") || strings.HasPrefix(out.String(), "sent 0 flows") {
		t.Errorf("stdout %q", out.String())
	}
}
