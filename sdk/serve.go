package sdk

import (
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Serve runs a storage plugin: call it from the plugin executable's main
// with the function that opens a store from settings. It does not return.
//
// Serve keeps the plugin well behaved: its stdout carries only the
// handshake line the host reads (anything else the plugin writes there,
// even through file descriptor 1, is passed to the host as a log line
// rather than breaking the handshake); slog's default logger writes to the
// host's log under the plugin's name; and the process exits when its host
// is gone, even if the host was killed with SIGKILL.
func Serve(name string, open OpenFunc) {
	logOut := os.Stderr
	handshakeOut := guardStdout()
	os.Stdout = handshakeOut

	slog.SetDefault(slog.New(newHostLogHandler(logOut)).With("plugin", name))
	exitWithParent()

	plugins := VersionedPlugins(open)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: plugins,
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: name, Output: logOut, JSONFormat: true, Level: hclog.Info,
		}),
	})
	if gp, ok := plugins[ProtocolVersion][PluginName].(*grpcPlugin); ok && gp.srv != nil {
		gp.srv.closeAll()
	}
	os.Exit(0)
}

// newHostLogHandler returns a slog handler that writes the JSON lines
// go-plugin's host parses as structured log records (hclog's field names
// and time format), so a plugin's records keep their level and attributes
// in the host's log.
func newHostLogHandler(w io.Writer) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.LevelKey:
				lvl := strings.ToLower(a.Value.String())
				if i := strings.IndexAny(lvl, "+-"); i > 0 {
					lvl = lvl[:i]
				}
				return slog.String("@level", lvl)
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	})
}
