// Package amqpconn is what inputs.amqp and outputs.amqp share to reach a
// RabbitMQ broker: the connection keys (url list for failover, TLS,
// heartbeat, frame_max), dialing with failover, and the headers that carry a
// message's writer id and sequence number between the two.
package amqpconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/flowline/flowline/core"
)

// Headers of every message outputs.amqp publishes: the writer's id and the
// message's sequence number. A consumer keeps the highest sequence it stored
// per writer and skips a redelivered message at or below it.
const (
	HeaderWriter = "flowline_writer"
	HeaderSeq    = "flowline_seq"
)

// URLs is one URL or a list of them (tried in order, for failover). It
// decodes from a TOML string or an array of strings.
type URLs []string

// UnmarshalTOML accepts a string or an array of strings.
func (u *URLs) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		*u = URLs{x}
	case []any:
		out := make(URLs, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("url: want a string or an array of strings, got %T in the array", e)
			}
			out = append(out, s)
		}
		*u = out
	default:
		return fmt.Errorf("url: want a string or an array of strings, got %T", v)
	}
	return nil
}

// Config is the connection part of both plugins' tables.
type Config struct {
	// URL is amqp://user:pass@host:port/vhost (or amqps://), one or several
	// for failover; secrets come from ${ENV} in the config.
	URL URLs `toml:"url"`
	// Heartbeat detects a dead broker (0 disables; default 10s).
	Heartbeat core.Duration `toml:"heartbeat"`
	// FrameMax is the largest frame asked of the broker (pmacct's
	// amqp_frame_max; 0 takes the broker's, 128 KiB with RabbitMQ).
	FrameMax core.Size `toml:"frame_max"`
	// ConnectTimeout bounds one dial (default 10s).
	ConnectTimeout core.Duration `toml:"connect_timeout"`
	// TLS: tls = true verifies the broker against tls_ca (or the system's
	// roots); tls_cert and tls_key present a client certificate; an amqps://
	// URL turns TLS on as well. tls_insecure_skip_verify is for tests only.
	TLS                bool   `toml:"tls"`
	TLSCA              string `toml:"tls_ca"`
	TLSCert            string `toml:"tls_cert"`
	TLSKey             string `toml:"tls_key"`
	TLSServerName      string `toml:"tls_server_name"`
	InsecureSkipVerify bool   `toml:"tls_insecure_skip_verify"`

	tlsConfig *tls.Config
	mu        sync.Mutex
	next      int // the URL to try first: the last one that worked
}

// Check validates the keys and loads the TLS files. Errors name the key.
func (c *Config) Check() error {
	if len(c.URL) == 0 {
		return errors.New("url is required (amqp://user:${AMQP_PASSWORD}@host:5672/vhost)")
	}
	anyTLS := c.TLS
	for _, raw := range c.URL {
		u, err := amqp.ParseURI(raw)
		if err != nil {
			return fmt.Errorf("url %q: %w", Redact(raw), err)
		}
		if u.Scheme == "amqps" {
			anyTLS = true
		}
	}
	if c.Heartbeat < 0 || c.FrameMax < 0 || c.ConnectTimeout < 0 {
		return errors.New("heartbeat, frame_max and connect_timeout must not be negative")
	}
	if c.FrameMax != 0 && (c.FrameMax < 4096 || c.FrameMax > 1<<31-1) {
		return fmt.Errorf("frame_max = %d: want 4096 to 2147483647 bytes", c.FrameMax)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls_cert and tls_key go together")
	}
	if !anyTLS {
		return nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return fmt.Errorf("tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls_ca %s: no PEM certificate in it", c.TLSCA)
		}
		tc.RootCAs = pool
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	c.tlsConfig = tc
	return nil
}

// Dial connects to the first URL that answers, starting with the one that
// worked last, and returns the connection and the URL (redacted, for logs).
func (c *Config) Dial(ctx context.Context, name string) (*amqp.Connection, string, error) {
	c.mu.Lock()
	start := c.next
	c.mu.Unlock()
	var errs []error
	for i := range c.URL {
		k := (start + i) % len(c.URL)
		raw := c.URL[k]
		conn, err := c.dialOne(ctx, raw, name)
		if err == nil {
			c.mu.Lock()
			c.next = k
			c.mu.Unlock()
			return conn, Redact(raw), nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", Redact(raw), err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", errors.Join(errs...)
}

func (c *Config) dialOne(ctx context.Context, raw, name string) (*amqp.Connection, error) {
	hb := time.Duration(c.Heartbeat)
	if hb == 0 {
		hb = 10 * time.Second
	}
	timeout := time.Duration(c.ConnectTimeout)
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Millisecond)
	}
	cfg := amqp.Config{
		Heartbeat: hb,
		FrameSize: int(c.FrameMax),
		Locale:    "en_US",
		Properties: amqp.Table{
			"product":         "Flowline",
			"connection_name": name,
		},
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake must finish within the timeout too.
			if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		},
	}
	if c.tlsConfig != nil {
		cfg.TLSClientConfig = c.tlsConfig.Clone()
		if c.TLS && strings.HasPrefix(raw, "amqp://") {
			raw = "amqps://" + strings.TrimPrefix(raw, "amqp://")
		}
	}
	return amqp.DialConfig(raw, cfg)
}

// Redact hides the password of an AMQP URL for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// DeclareExchange makes sure the exchange exists: one that exists is used
// as it is (an edge and a central writer, or pmacct and Flowline, may have
// declared it with other durability), one that does not is declared with
// kind and durable. It returns the channel to go on with (a failed passive
// declare closes the one given).
func DeclareExchange(conn *amqp.Connection, ch *amqp.Channel, name, kind string, durable bool) (*amqp.Channel, error) {
	if name == "" {
		return ch, nil // the default exchange always exists
	}
	if err := ch.ExchangeDeclarePassive(name, kind, durable, false, false, false, nil); err == nil {
		return ch, nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("channel: %w", err)
	}
	if err := ch.ExchangeDeclare(name, kind, durable, false, false, false, nil); err != nil {
		return nil, err
	}
	return ch, nil
}
