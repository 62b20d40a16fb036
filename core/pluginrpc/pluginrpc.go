// Package pluginrpc is the host side of Flowline's external plugins and what
// the host and the SDK (package sdk) share: the go-plugin handshake, the
// protocol versions, the mapping of errors to gRPC statuses and the bridge
// from the plugin's log lines to Flowline's log.
//
// The protocol is proto/flowline/plugin/v1 (generated code in
// internal/pluginpb). Batches travel in the core/wire encoding.
package pluginrpc

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowline/flowline/core"
)

// ProtocolVersion is the plugin protocol this Flowline speaks. A new version
// is added to VersionedPlugins beside the old ones, so that plugins built
// against an older SDK keep working as long as the host serves their version.
const ProtocolVersion = 1

// Handshake is what Flowline and a plugin check before they talk: a plugin
// started by hand (without the cookie) says it is a plugin and exits.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "FLOWLINE_PLUGIN",
	MagicCookieValue: "b8f3c2d0-flowline-plugin-protocol",
}

// MaxMessage bounds one gRPC message either way: a batch of core/wire's
// MaxCount records with every field set fits.
const MaxMessage = 64 << 20

// NewGRPCServer is the plugin side's gRPC server, with MaxMessage.
func NewGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(MaxMessage), grpc.MaxSendMsgSize(MaxMessage))...)
}

// PluginName is the single plugin name a Flowline plugin process serves
// through go-plugin; the kind is told by the Describe call.
const PluginName = "flowline"

// GRPCPlugin adapts Flowline's services to go-plugin: on the plugin side
// Register adds the services to the server; on the host side the plugin is
// the client connection itself.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Register adds the plugin's services (plugin side only).
	Register func(*grpc.Server)
}

// GRPCServer registers the plugin's services.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Register == nil {
		return errors.New("pluginrpc: no services to serve")
	}
	p.Register(s)
	return nil
}

// GRPCClient returns the connection: the host builds its stubs on it.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return c, nil
}

// VersionedPlugins is the plugin set for every protocol version served.
func VersionedPlugins(register func(*grpc.Server)) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{Register: register}},
	}
}

// ToStatus turns a plugin's error into a gRPC status: errors marked
// core.Permanent become FAILED_PRECONDITION (the host does not retry them),
// the rest UNKNOWN (retried).
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if core.IsPermanent(err) {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// FromStatus turns a status from a plugin back into an error the engine
// understands: FAILED_PRECONDITION and INVALID_ARGUMENT become permanent.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := errors.New(st.Message())
	switch st.Code() {
	case codes.FailedPrecondition, codes.InvalidArgument:
		return core.Permanent(msg)
	}
	return msg
}

// Broken reports whether err says the plugin process is gone or unreachable
// (the host restarts it), as opposed to an error the plugin returned.
func Broken(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
		return true
	}
	return false
}
