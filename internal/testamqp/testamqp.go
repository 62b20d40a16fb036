// Package testamqp finds the RabbitMQ broker of the integration tests
// (scripts/rabbitmq.sh) and gives each test a fresh exchange and queue.
package testamqp

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/flowline/flowline/internal/testbin"
)

// Broker is the test broker.
type Broker struct {
	URL    string
	Script string // scripts/rabbitmq.sh, to stop and start it
	// PmacctHost is a loopback address where the broker also listens on
	// port 5672, the only port nfacctd's amqp plugin uses ("" if none).
	PmacctHost string
	// TLSURL is an amqps:// URL of the broker's TLS listener and CA the
	// file of the CA that signed its certificate ("" if none).
	TLSURL, CA string
}

// Find returns the broker scripts/rabbitmq.sh runs. Without one the test is
// skipped, or fails under CI=true (CI must run the AMQP tests). -short skips.
func Find(tb testing.TB) Broker {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test (-short)")
	}
	dir := os.Getenv("FLOWLINE_RABBITMQ_DIR")
	if dir == "" {
		dir = "/tmp/flowline-rabbitmq"
	}
	env := testbin.ReadEnvFile(filepath.Join(dir, "env"))
	if v := os.Getenv("FLOWLINE_TEST_AMQP_URL"); v != "" {
		env["FLOWLINE_TEST_AMQP_URL"] = v
	}
	b := Broker{URL: env["FLOWLINE_TEST_AMQP_URL"], Script: env["FLOWLINE_TEST_AMQP_SCRIPT"], PmacctHost: env["FLOWLINE_TEST_AMQP_PMACCT_HOST"],
		TLSURL: env["FLOWLINE_TEST_AMQPS_URL"], CA: env["FLOWLINE_TEST_AMQP_CA"]}
	if b.Script == "" {
		_, file, _, _ := runtime.Caller(0)
		b.Script = filepath.Join(filepath.Dir(file), "..", "..", "scripts", "rabbitmq.sh")
	}
	msg := ""
	if b.URL == "" {
		msg = "no test broker (scripts/rabbitmq.sh start)"
	} else if c, err := amqp.DialConfig(b.URL, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)}); err != nil {
		msg = "test broker does not answer: " + err.Error()
	} else {
		c.Close()
	}
	if msg != "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg + " (CI must run the AMQP tests)")
		}
		tb.Skip(msg)
	}
	return b
}

// Name returns a unique name for a test's exchange or queue.
func Name(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Dial connects to the broker; the connection closes with the test.
func (b Broker) Dial(tb testing.TB) (*amqp.Connection, *amqp.Channel) {
	tb.Helper()
	c, err := amqp.Dial(b.URL)
	if err != nil {
		tb.Fatal(err)
	}
	ch, err := c.Channel()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c, ch
}

// Stop stops the broker (scripts/rabbitmq.sh stop).
func (b Broker) Stop(tb testing.TB) { b.run(tb, "stop") }

// Start starts it again with its data (scripts/rabbitmq.sh start).
func (b Broker) Start(tb testing.TB) { b.run(tb, "start") }

func (b Broker) run(tb testing.TB, what string) {
	tb.Helper()
	out, err := exec.Command(b.Script, what).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", b.Script, what, err, out)
	}
}
