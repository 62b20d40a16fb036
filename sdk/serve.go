package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/pluginrpc"
	"github.com/flowline/flowline/core/wire"
	pb "github.com/flowline/flowline/internal/pluginpb"
)

// ServeOutput runs an output plugin; it returns only when Flowline ends the
// process. factory returns a new plugin value with its defaults set.
func ServeOutput(p Plugin, factory func() Output) {
	serve(&server{kind: "outputs", desc: p, factory: func() any { return factory() }})
}

// ServeProcessor runs a processor plugin.
func ServeProcessor(p Plugin, factory func() Processor) {
	serve(&server{kind: "processors", desc: p, factory: func() any { return factory() }})
}

// ServeInput runs an input plugin.
func ServeInput(p Plugin, factory func() Input) {
	serve(&server{kind: "inputs", desc: p, factory: func() any { return factory() }})
}

// logOutput is the process's stderr before go-plugin redirects it: the
// plugin's log lines go there, where Flowline parses them.
var logOutput = os.Stderr

func serve(s *server) {
	logOutput = os.Stderr
	go watchParent()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  pluginrpc.Handshake,
		VersionedPlugins: pluginrpc.VersionedPlugins(s.register),
		GRPCServer:       pluginrpc.NewGRPCServer,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn, JSONFormat: true}),
	})
}

// watchParent ends the plugin when Flowline is gone (the kernel normally
// does it first; this covers the cases where it cannot).
func watchParent() {
	parent := os.Getppid()
	for {
		time.Sleep(time.Second)
		if os.Getppid() != parent {
			os.Exit(2)
		}
	}
}

// server implements the plugin's gRPC services around one plugin value.
type server struct {
	pb.UnimplementedPluginServer
	pb.UnimplementedOutputServer
	pb.UnimplementedProcessorServer
	pb.UnimplementedInputServer

	kind    string
	desc    Plugin
	factory func() any

	mu     sync.Mutex
	plugin any
	env    *core.Env

	acksMu sync.Mutex
	acks   map[uint64]*core.Batch // input batches sent, waiting for Ack
	nextID uint64
}

func (s *server) register(g *grpc.Server) {
	pb.RegisterPluginServer(g, s)
	switch s.kind {
	case "outputs":
		pb.RegisterOutputServer(g, s)
	case "processors":
		pb.RegisterProcessorServer(g, s)
	case "inputs":
		pb.RegisterInputServer(g, s)
	}
}

func (s *server) Describe(context.Context, *pb.Empty) (*pb.DescribeResponse, error) {
	return &pb.DescribeResponse{Kind: s.kind, Name: s.desc.Name, Sample: s.desc.Sample, SdkVersion: Version}, nil
}

func (s *server) Init(_ context.Context, req *pb.InitRequest) (*pb.InitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	env := pluginEnv(req)
	p, errs := newInstance(s.factory, req.ConfigToml, env)
	if len(errs) > 0 {
		resp := &pb.InitResponse{}
		for _, e := range errs {
			resp.Errors = append(resp.Errors, &pb.ConfigError{Key: e.key, Message: e.msg})
		}
		return resp, nil
	}
	s.plugin, s.env = p, env
	resp := &pb.InitResponse{}
	if t, ok := p.(core.Ticker); ok {
		resp.TickEveryNs = int64(t.TickEvery())
	}
	if c, ok := p.(core.PacketConsumer); ok {
		resp.ConsumesPackets = c.ConsumesPackets()
	}
	return resp, nil
}

func notReady() error {
	return status.Error(codes.FailedPrecondition, "plugin not initialised: Init first")
}

// decode turns a wire batch into a pooled core.Batch.
func decode(in *pb.Batch) (*core.Batch, error) {
	b, _, err := wire.Decode(in.Data)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	b.ID = in.Id
	return b, nil
}

func (s *server) output() (core.Output, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.plugin.(core.Output)
	if !ok {
		return nil, notReady()
	}
	return o, nil
}

func (s *server) Connect(ctx context.Context, _ *pb.Empty) (*pb.Empty, error) {
	o, err := s.output()
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, pluginrpc.ToStatus(o.Connect(ctx))
}

func (s *server) Write(ctx context.Context, in *pb.Batch) (*pb.Empty, error) {
	o, err := s.output()
	if err != nil {
		return nil, err
	}
	b, err := decode(in)
	if err != nil {
		return nil, err
	}
	defer b.Release()
	return &pb.Empty{}, pluginrpc.ToStatus(o.Write(ctx, b))
}

func (s *server) Close(ctx context.Context, _ *pb.Empty) (*pb.Empty, error) {
	o, err := s.output()
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, pluginrpc.ToStatus(o.Close(ctx))
}

// collect runs f with an emit that encodes every emitted batch into the
// response.
func collect(f func(core.Emit) error) (*pb.ProcessResponse, error) {
	resp := &pb.ProcessResponse{}
	emit := func(b *core.Batch) {
		if b == nil {
			return
		}
		if b.Len() > 0 {
			resp.Batches = append(resp.Batches, &pb.Batch{Id: b.ID, Data: wire.Append(nil, b.ID, b)})
		}
		b.Release()
	}
	if err := f(emit); err != nil {
		return nil, pluginrpc.ToStatus(err)
	}
	return resp, nil
}

func (s *server) processor() (core.Processor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.plugin.(core.Processor)
	if !ok {
		return nil, notReady()
	}
	return p, nil
}

func (s *server) Process(ctx context.Context, in *pb.Batch) (*pb.ProcessResponse, error) {
	p, err := s.processor()
	if err != nil {
		return nil, err
	}
	b, err := decode(in)
	if err != nil {
		return nil, err
	}
	return collect(func(emit core.Emit) error { return p.Process(ctx, b, emit) })
}

func (s *server) Tick(ctx context.Context, req *pb.TickRequest) (*pb.ProcessResponse, error) {
	p, err := s.processor()
	if err != nil {
		return nil, err
	}
	t, ok := p.(core.Ticker)
	if !ok {
		return &pb.ProcessResponse{}, nil
	}
	return collect(func(emit core.Emit) error { return t.Tick(ctx, time.Unix(0, req.NowUnixNano), emit) })
}

func (s *server) Flush(ctx context.Context, _ *pb.Empty) (*pb.ProcessResponse, error) {
	p, err := s.processor()
	if err != nil {
		return nil, err
	}
	return collect(func(emit core.Emit) error { return p.Flush(ctx, emit) })
}

func (s *server) input() (core.Input, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.plugin.(core.Input)
	if !ok {
		return nil, notReady()
	}
	return in, nil
}

// Run starts the input and streams what it emits. A batch with
// acknowledgements (OnDone) is kept until Flowline acks its id.
func (s *server) Run(_ *pb.Empty, stream pb.Input_RunServer) error {
	in, err := s.input()
	if err != nil {
		return err
	}
	ctx := stream.Context()
	if l, ok := in.(core.Listener); ok {
		if err := l.Listen(ctx); err != nil {
			return pluginrpc.ToStatus(err)
		}
	}
	var buf []byte
	emit := func(b *core.Batch) bool {
		s.acksMu.Lock()
		s.nextID++
		id := s.nextID
		if s.acks == nil {
			s.acks = map[uint64]*core.Batch{}
		}
		s.acks[id] = b
		s.acksMu.Unlock()
		buf = wire.Append(buf[:0], b.ID, b)
		err := stream.Send(&pb.Batch{Id: id, Data: buf})
		if err != nil {
			s.ack(id, false)
			return false
		}
		return true
	}
	err = in.Start(ctx, emit)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return pluginrpc.ToStatus(err)
}

// ack releases a sent input batch: its OnDone callbacks learn the outcome.
func (s *server) ack(id uint64, ok bool) {
	s.acksMu.Lock()
	b := s.acks[id]
	delete(s.acks, id)
	s.acksMu.Unlock()
	if b == nil {
		return
	}
	if !ok {
		b.Fail()
	}
	b.Release()
}

func (s *server) Ack(_ context.Context, req *pb.AckRequest) (*pb.Empty, error) {
	s.ack(req.Id, req.Ok)
	return &pb.Empty{}, nil
}

func (s *server) Stop(ctx context.Context, _ *pb.Empty) (*pb.Empty, error) {
	in, err := s.input()
	if err != nil {
		return nil, err
	}
	if err := in.Stop(ctx); err != nil {
		return nil, pluginrpc.ToStatus(fmt.Errorf("stop: %w", err))
	}
	return &pb.Empty{}, nil
}
