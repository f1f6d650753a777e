package host

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// slogAdapter presents a *slog.Logger as the hclog.Logger go-plugin wants,
// so plugin log lines (parsed by go-plugin from the plugin's stderr) and
// go-plugin's own messages reach the host's slog handler.
type slogAdapter struct {
	l     *slog.Logger
	name  string
	args  []any
	level hclog.Level
	// forward is set on the logger go-plugin uses for the plugin's own
	// records; the base logger carries go-plugin's chatter, which is
	// demoted to debug so the host is quiet at info level.
	forward bool
}

func newSlogAdapter(l *slog.Logger, name string) hclog.Logger {
	return &slogAdapter{l: l, name: name, level: hclog.Trace}
}

func toSlogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (a *slogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || level < a.level {
		return
	}
	sl := toSlogLevel(level)
	if !a.forward && sl < slog.LevelWarn {
		sl = slog.LevelDebug
	}
	a.l.Log(context.Background(), sl, msg, append(append([]any{}, a.args...), args...)...)
}

func (a *slogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *slogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *slogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *slogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *slogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *slogAdapter) enabled(l hclog.Level) bool {
	return l >= a.level && a.l.Enabled(context.Background(), toSlogLevel(l))
}

func (a *slogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *slogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *slogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *slogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *slogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *slogAdapter) ImpliedArgs() []any { return a.args }

func (a *slogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.args = append(append([]any{}, a.args...), args...)
	return &c
}

func (a *slogAdapter) Name() string { return a.name }

// Named is how go-plugin derives the logger for a plugin's own records.
// The plugin's name is kept as given: go-plugin would append the
// executable's base name, which for first-party plugins is "replicator".
func (a *slogAdapter) Named(string) hclog.Logger {
	c := *a
	c.forward = true
	return &c
}

func (a *slogAdapter) ResetNamed(name string) hclog.Logger { return a.Named(name) }

func (a *slogAdapter) SetLevel(l hclog.Level) { a.level = l }

func (a *slogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (a *slogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *slogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return lineLogger{l: a.l, level: slog.LevelInfo, msg: "plugin output"}
}

// lineLogger logs each write as one record; go-plugin uses it for a
// plugin's stdout and stderr streams.
type lineLogger struct {
	l     *slog.Logger
	level slog.Level
	msg   string
}

func (w lineLogger) Write(p []byte) (int, error) {
	for _, line := range splitLines(p) {
		w.l.Log(context.Background(), w.level, w.msg, "line", line)
	}
	return len(p), nil
}

func splitLines(p []byte) []string {
	var out []string
	start := 0
	for i, b := range p {
		if b == '\n' {
			if i > start {
				out = append(out, string(p[start:i]))
			}
			start = i + 1
		}
	}
	if start < len(p) {
		out = append(out, string(p[start:]))
	}
	return out
}
