// Command oldproto is a plugin built against an older plugin protocol
// (version 0, which no Flowline serves): the host must refuse it with one
// clear error naming both versions.
package main

import (
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/flowline/flowline/core/pluginrpc"
)

func main() {
	hs := pluginrpc.Handshake
	hs.ProtocolVersion = 0
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  hs,
		VersionedPlugins: map[int]plugin.PluginSet{0: {pluginrpc.PluginName: &pluginrpc.GRPCPlugin{Register: func(*grpc.Server) {}}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
