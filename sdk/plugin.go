package sdk

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	storagev1 "github.com/sqlitereplicator/replicator/sdk/proto/storage/v1"
)

// ProtocolVersion is the storage protocol version this SDK speaks. A plugin
// built with this SDK serves it; a host built with it asks for it.
const ProtocolVersion = 1

// PluginName is the name under which a plugin process serves storage.
const PluginName = "storage"

// Handshake is the go-plugin handshake shared by replicator and its
// plugins. The cookie only tells a plugin executable that it was started by
// a replicator host (and not by a user at a shell); it is not a secret.
// ProtocolVersion here is go-plugin's fallback for hosts that do not send a
// version list; replicator negotiates through VersionedPlugins.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "REPLICATOR_STORAGE_PLUGIN",
	MagicCookieValue: "b9c1e6f2-3f5e-4d0a-9c55-6f1f0a7d2c41",
}

// VersionedPlugins returns the go-plugin plugin sets, by protocol version,
// that serve open (plugin side) or dispense an Opener (host side, open nil).
func VersionedPlugins(open OpenFunc) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &grpcPlugin{open: open}},
	}
}

// grpcPlugin binds protocol v1 to go-plugin's gRPC transport.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	open OpenFunc
	srv  *grpcServer
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	p.srv = newGRPCServer(p.open)
	storagev1.RegisterStorageServer(s, p.srv)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewGRPCOpener(storagev1.NewStorageClient(c)), nil
}
