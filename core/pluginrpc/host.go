package pluginrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/hashicorp/go-plugin"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/config"
	pb "github.com/flowline/flowline/internal/pluginpb"
)

// Spec is the part of an [[inputs|processors|outputs.external]] table that
// says which program to run and how. The three external plugins embed it.
type Spec struct {
	// Command is the plugin program (an absolute path, or a name looked up
	// in PATH).
	Command string `toml:"command"`
	// Args are its arguments.
	Args []string `toml:"args"`
	// Env adds variables to its environment (values may use ${ENV}).
	Env map[string]string `toml:"env"`
	// Config is handed to the plugin as it is; the plugin validates it.
	Config map[string]any `toml:"config"`
	// StartTimeout bounds the start and handshake of the process.
	StartTimeout core.Duration `toml:"start_timeout"`
	// MaxRetries is how many times one batch is tried (the plugin restarted
	// in between when it died) before it is dropped and counted.
	MaxRetries int `toml:"max_retries"`

	loc config.Location
}

// DefaultSpec returns the defaults of the keys above.
func DefaultSpec() Spec {
	return Spec{StartTimeout: core.Duration(30 * time.Second), MaxRetries: 10}
}

// SetLocation keeps where the table is, to report the plugin's config
// errors at their lines.
func (s *Spec) SetLocation(l config.Location) { s.loc = l }

// Validate checks the keys the host reads itself.
func (s *Spec) Validate() error {
	if strings.TrimSpace(s.Command) == "" {
		return errors.New("command: the plugin program is required")
	}
	if s.StartTimeout <= 0 {
		return errors.New("start_timeout must be positive")
	}
	if s.MaxRetries < 1 {
		return errors.New("max_retries must be at least 1")
	}
	return nil
}

// Client runs one plugin process: it starts it, checks that it is a plugin
// of the expected kind, initialises it, and restarts it when it dies. Stubs
// are built on Conn. Calls are not serialised here: the engine calls each
// plugin from one goroutine (inputs: Run, Ack and Stop, which gRPC allows
// concurrently).
type Client struct {
	spec  Spec
	kind  string
	init  *pb.InitRequest
	log   *slog.Logger
	alias string

	restarts prometheus.Counter // nil outside Launch

	mu       sync.Mutex
	stderr   tailWriter // the last lines the process wrote, for start errors
	gp       *plugin.Client
	conn     *grpc.ClientConn
	info     *pb.DescribeResponse
	initResp *pb.InitResponse
	starts   int
}

// NewClient prepares a client; Start runs the process.
func NewClient(spec Spec, kind string, env *core.Env, logLevel string) (*Client, error) {
	text, err := configTOML(spec.Config)
	if err != nil {
		return nil, spec.loc.Error([]string{"config"}, err.Error())
	}
	return &Client{
		spec:  spec,
		kind:  kind,
		log:   env.Logger,
		alias: env.Name,
		init: &pb.InitRequest{
			Name:       env.Name,
			ConfigToml: text,
			DataDir:    env.DataDir,
			BatchSize:  int32(env.BatchSize),
			Primitives: env.Primitives,
			LogLevel:   logLevel,
		},
	}, nil
}

func configTOML(m map[string]any) (string, error) {
	if len(m) == 0 {
		return "", nil
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(m); err != nil {
		return "", fmt.Errorf("cannot hand the config table to the plugin: %w", err)
	}
	return b.String(), nil
}

// Launch prepares the client of an external plugin table, registers its
// restart counter (flowline_external_restarts_total) with env.Metrics and
// starts the process within the spec's start_timeout.
func Launch(spec Spec, kind string, env *core.Env) (*Client, error) {
	c, err := NewClient(spec, kind, env, "info")
	if err != nil {
		return nil, err
	}
	c.restarts = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowline", Subsystem: "external", Name: "restarts_total",
		Help: "Times the plugin process was started again after it died."})
	if err := env.Metrics.Register(c.restarts); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(spec.StartTimeout))
	defer cancel()
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Start runs the process and initialises the plugin. Configuration errors
// come back as *config.Error values (joined), located at their keys.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startLocked(ctx)
}

func (c *Client) startLocked(ctx context.Context) error {
	c.killLocked()
	cmd := exec.Command(c.spec.Command, c.spec.Args...)
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(c.spec.Env))
	for k := range c.spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+c.spec.Env[k])
	}
	c.starts++
	if err := c.launch(cmd); err != nil {
		return err
	}
	info, err := pb.NewPluginClient(c.conn).Describe(ctx, &pb.Empty{})
	if err != nil {
		return fmt.Errorf("plugin %s: describe: %w", c.spec.Command, FromStatus(err))
	}
	if info.Kind != c.kind {
		return core.Permanent(fmt.Errorf("plugin %s is a plugin of kind %s (%q), not %s", c.spec.Command, info.Kind, info.Name, c.kind))
	}
	c.info = info
	resp, err := pb.NewPluginClient(c.conn).Init(ctx, c.init)
	if err != nil {
		return fmt.Errorf("plugin %s (%s): init: %w", c.spec.Command, info.Name, FromStatus(err))
	}
	if len(resp.Errors) > 0 {
		errs := make([]error, 0, len(resp.Errors))
		for _, e := range resp.Errors {
			path := []string{"config"}
			if e.Key != "" {
				path = append(path, strings.Split(e.Key, ".")...)
			}
			errs = append(errs, c.spec.loc.Error(path, e.Message))
		}
		return core.Permanent(errors.Join(errs...))
	}
	c.initResp = resp
	return nil
}

// startError explains a failed start: the command, and what go-plugin saw.
func (c *Client) startError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "incompatible API version"), strings.Contains(msg, "incompatible core API version"):
		return core.Permanent(fmt.Errorf("plugin %s speaks another plugin protocol: %s (this Flowline speaks protocol %d; rebuild the plugin against a matching SDK)",
			c.spec.Command, firstLine(msg), ProtocolVersion))
	case strings.Contains(msg, "exited before we could connect"),
		strings.TrimSpace(firstLine(msg)) == "Unrecognized remote plugin message:":
		// The process ended without a handshake line. Kill waits until
		// its stderr is read to the end.
		if c.gp != nil {
			c.gp.Kill()
		}
		if last := c.stderr.last(); last != "" {
			return fmt.Errorf("plugin %s exited at start: %s", c.spec.Command, last)
		}
		return fmt.Errorf("plugin %s exited at start without a word", c.spec.Command)
	case strings.Contains(msg, "Unrecognized remote plugin message"):
		return core.Permanent(fmt.Errorf("%s is not a Flowline plugin (it did not answer the plugin handshake; build it with github.com/flowline/flowline/sdk): %s", c.spec.Command, firstLine(msg)))
	}
	var pe *os.PathError
	if errors.As(err, &pe) || errors.Is(err, exec.ErrNotFound) {
		return core.Permanent(fmt.Errorf("plugin %s: %w", c.spec.Command, err))
	}
	return fmt.Errorf("plugin %s: start: %s", c.spec.Command, firstLine(msg))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// Restart kills the process (if it still runs) and starts it again; it is
// counted in the restart counter.
func (c *Client) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.restarts != nil {
		c.restarts.Inc()
	}
	c.log.Warn("restarting plugin process", "command", filepath.Base(c.spec.Command), "starts", c.starts+1)
	return c.startLocked(ctx)
}

// Conn is the connection to the running process (nil before Start).
func (c *Client) Conn() *grpc.ClientConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// Exited reports whether the process is gone.
func (c *Client) Exited() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gp == nil || c.gp.Exited()
}

// Info is what the plugin said it is (after Start).
func (c *Client) Info() *pb.DescribeResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// InitResponse is the plugin's answer to Init (after Start).
func (c *Client) InitResponse() *pb.InitResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.initResp
}

// MaxRetries is the spec's max_retries.
func (c *Client) MaxRetries() int { return c.spec.MaxRetries }

// Kill ends the process (go-plugin asks it to exit, then kills it).
func (c *Client) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.killLocked()
}

func (c *Client) killLocked() {
	if c.gp != nil {
		c.gp.Kill()
		c.gp = nil
		c.conn = nil
	}
}

// CleanupClients kills every plugin process this Flowline started. The
// flowline command calls it before it exits.
func CleanupClients() { plugin.CleanupClients() }

// launch runs cmd through go-plugin's handshake and connects to it.
func (c *Client) launch(cmd *exec.Cmd) error {
	dieWithParent(cmd)
	c.gp = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: VersionedPlugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Managed:          true,
		Logger:           newHostLogger(c.log),
		Stderr:           &c.stderr,
		SyncStderr:       StderrWriter(c.log),
		SyncStdout:       StderrWriter(c.log),
		StartTimeout:     time.Duration(c.spec.StartTimeout),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessage), grpc.MaxCallSendMsgSize(MaxMessage))},
	})
	rpc, err := c.gp.Client()
	if err != nil {
		return c.startError(err)
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		return c.startError(err)
	}
	c.conn = raw.(*grpc.ClientConn)
	return nil
}

// Sample starts the plugin program at path, asks it what it is and returns
// its kind, name and sample configuration (`flowline config --plugin PATH`).
func Sample(ctx context.Context, path string) (*pb.DescribeResponse, error) {
	c := &Client{spec: Spec{Command: path, StartTimeout: core.Duration(30 * time.Second)}, log: slog.New(slog.DiscardHandler)}
	defer c.Kill()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.launch(exec.Command(path)); err != nil {
		return nil, err
	}
	info, err := pb.NewPluginClient(c.conn).Describe(ctx, &pb.Empty{})
	if err != nil {
		return nil, fmt.Errorf("plugin %s: describe: %w", path, FromStatus(err))
	}
	return info, nil
}

// tailWriter keeps the end of what a plugin wrote to stderr.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > 4096 {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-2048:]...)
	}
	return len(p), nil
}

// last returns the last non-empty line, with the message of an hclog JSON
// line taken out.
func (w *tailWriter) last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(w.buf)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		var entry struct {
			Message string `json:"@message"`
		}
		if json.Unmarshal([]byte(l), &entry) == nil && entry.Message != "" {
			return entry.Message
		}
		return l
	}
	return ""
}
