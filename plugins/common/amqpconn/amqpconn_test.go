package amqpconn

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestURLsFromTOML(t *testing.T) {
	var c struct {
		A URLs `toml:"a"`
		B URLs `toml:"b"`
	}
	if _, err := toml.Decode(`a = "amqp://h1/"
b = ["amqp://h1/", "amqp://h2/"]`, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.A) != 1 || len(c.B) != 2 || c.B[1] != "amqp://h2/" {
		t.Errorf("decoded %v and %v", c.A, c.B)
	}
	if _, err := toml.Decode(`a = 5`, &c); err == nil {
		t.Error("a number decoded as a URL")
	}
}

func TestRedact(t *testing.T) {
	if got := Redact("amqp://user:secret@host:5672/vh"); strings.Contains(got, "secret") || !strings.Contains(got, "user") {
		t.Errorf("Redact = %s", got)
	}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		cfg  *Config
		want string
	}{
		{&Config{}, "url is required"},
		{&Config{URL: URLs{"http://h/"}}, "url"},
		{&Config{URL: URLs{"amqp://h/"}, FrameMax: 100}, "frame_max"},
		{&Config{URL: URLs{"amqp://h/"}, TLSCert: "c.pem"}, "tls_cert and tls_key"},
		{&Config{URL: URLs{"amqps://h/"}, TLSCA: "/nonexistent/ca.pem"}, "tls_ca"},
	} {
		err := c.cfg.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%+v) = %v, want %q", c.cfg.URL, err, c.want)
		}
	}
	ok := Config{URL: URLs{"amqp://u:p@h:5672/v"}}
	if err := ok.Check(); err != nil {
		t.Error(err)
	}
}
