// Package sdk is everything a replicator storage plugin needs, and the
// host side of the plugin protocol.
//
// A plugin is an executable that implements Storage and calls Serve from its
// main:
//
//	func main() {
//		sdk.Serve("mystore", func(ctx context.Context, settings map[string]string) (sdk.Storage, error) {
//			return openMyStore(ctx, settings)
//		})
//	}
//
// The host (replicator) starts the executable through hashicorp/go-plugin,
// negotiates the protocol version (ProtocolVersion; see the host package),
// and talks to it over gRPC (proto/storage/v1) with mutual TLS. Errors
// cross the boundary as Codes, so errors.Is(err, sdk.ErrNotFound) works the
// same on both sides.
package sdk
