// Package host launches storage plugins and hands back sdk.Storage values
// that survive the plugin process: a plugin that dies is started again on
// the next call, and its stores are opened again with the same settings.
package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Config names a plugin executable and how to run it.
type Config struct {
	// Name is how logs and errors refer to the plugin ("s3", "my-store").
	Name string
	// Path is the executable; Args are passed to it (a first-party plugin
	// compiled into replicator is replicator itself with "plugin serve
	// NAME").
	Path string
	Args []string
	// SHA256, when set, is the hex sha256 the executable must have; a
	// mismatch refuses to run it.
	SHA256 string
	// Logger receives the plugin's log records; nil means slog.Default().
	Logger *slog.Logger
	// StartTimeout bounds the handshake; zero means one minute.
	StartTimeout time.Duration
	// OnRestart, if set, is called each time the plugin is started again
	// after it died (for a metric).
	OnRestart func()
	// MinRestartDelay and MaxRestartDelay bound the backoff between
	// restarts of a plugin that keeps dying: the first restart after a
	// death is immediate, the next waits MinRestartDelay (zero: 100ms),
	// doubling up to MaxRestartDelay (zero: 30s). A plugin that stayed up
	// for MaxRestartDelay starts over with an immediate restart.
	MinRestartDelay, MaxRestartDelay time.Duration
	// IdleTimeout, when positive, stops the plugin process once no call
	// has been in flight for that long (a Get's reader counts until it
	// is closed); the next call starts it again, which is not counted as
	// a restart. A daemon whose databases are idle then holds no plugin
	// process, and no memory for it.
	IdleTimeout time.Duration
	// OnIdleStop, if set, is called after each such stop: the host has
	// been idle that long too, a moment to give memory back.
	OnIdleStop func()
}

// Plugin is one plugin executable, started on first use and again after
// it dies. It is safe for concurrent use.
type Plugin struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	client   *plugin.Client
	rpc      plugin.ClientProtocol
	opener   sdk.Opener
	epoch    uint64 // counts launches; stores re-open when it changes
	version  int
	restarts int
	closed   bool
	// started is when the running process was launched; a process that
	// lived long enough resets the backoff.
	started time.Time
	// active counts calls in flight (see current and release); idleSince
	// is when it last fell to zero, and idle stops the process once
	// IdleTimeout has passed since.
	active    int
	idleSince time.Time
	idle      *time.Timer
	// rs is written only by current, holding mu and hmu; Health reads it
	// holding only hmu, so that it never waits for a launch in progress.
	hmu sync.Mutex
	rs  restartState
}

// restartState is the backoff state of a plugin that died.
type restartState struct {
	down      bool // from a death until the next successful launch
	attempt   int  // restarts tried since the plugin last stayed up
	nextStart time.Time
	lastErr   error
}

// describe says that the plugin is restarting, which attempt is next and
// when.
func (rs restartState) describe(name string, now time.Time) string {
	next := "at the next request"
	if wait := rs.nextStart.Sub(now); wait > 0 {
		next = "next in " + wait.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("plugin %s restarting: attempt %d, %s (%v)", name, rs.attempt, next, rs.lastErr)
}

// setRestart replaces the backoff state; p.mu is held.
func (p *Plugin) setRestart(rs restartState) {
	p.hmu.Lock()
	p.rs = rs
	p.hmu.Unlock()
}

// New returns a Plugin for cfg; nothing runs until it is used.
func New(cfg Config) *Plugin {
	l := cfg.Logger
	if l == nil {
		l = slog.Default()
	}
	return &Plugin{cfg: cfg, log: l.With("plugin", cfg.Name)}
}

// Start launches the plugin if it is not running and returns the protocol
// version it speaks.
func (p *Plugin) Start(ctx context.Context) (int, error) {
	if _, _, err := p.current(ctx); err != nil {
		return 0, err
	}
	p.release()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version, nil
}

// Restarts reports how many times the plugin was started again after it
// died.
func (p *Plugin) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Pid returns the plugin's process id, or 0 when it is not running. Tests
// use it to kill the plugin.
func (p *Plugin) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil || p.client.Exited() {
		return 0
	}
	if rc := p.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Close stops the plugin process. Stores opened from it fail afterwards.
func (p *Plugin) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.idle != nil {
		p.idle.Stop()
	}
	if p.client != nil {
		p.client.Kill()
		p.client = nil
	}
	return nil
}

// current returns an Opener of a running plugin process, launching one when
// there is none or the last one died. A plugin that keeps dying is not
// started again before its backoff delay has passed: calls fail at once with
// a transient error saying when the next attempt is, so callers retry
// instead of waiting here with the lock held. On success the caller holds
// the process in use until it calls release.
func (p *Plugin) current(ctx context.Context) (sdk.Opener, uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, 0, fmt.Errorf("plugin %s: closed", p.cfg.Name)
	}
	if p.client != nil && !p.client.Exited() {
		p.active++
		return p.opener, p.epoch, nil
	}
	now := time.Now()
	rs := p.rs
	if p.client != nil {
		p.client.Kill()
		p.client = nil
		if now.Sub(p.started) >= p.maxDelay() {
			rs.attempt = 0 // it had stayed up: no backoff for this death
		}
		rs.down = true
		rs.lastErr = errors.New("the plugin process exited")
		rs.attempt++
		rs.nextStart = now.Add(p.delay(rs.attempt))
		p.setRestart(rs)
		p.log.Warn("storage plugin exited; starting it again", "attempt", rs.attempt, "in", rs.nextStart.Sub(now).String())
	}
	if rs.down && now.Before(rs.nextStart) {
		return nil, 0, sdk.Errorf(sdk.Unavailable, "%s", rs.describe(p.cfg.Name, now))
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if err := p.launch(); err != nil {
		if !rs.down {
			return nil, 0, err
		}
		rs.attempt++
		rs.lastErr = err
		rs.nextStart = time.Now().Add(p.delay(rs.attempt))
		p.setRestart(rs)
		p.log.Warn("storage plugin did not start again", "attempt", rs.attempt-1, "err", err, "next in", time.Until(rs.nextStart).String())
		return nil, 0, sdk.Errorf(sdk.Unavailable, "%s: %v", rs.describe(p.cfg.Name, time.Now()), err)
	}
	p.started = time.Now()
	if rs.down {
		rs.down, rs.lastErr = false, nil
		p.setRestart(rs)
		p.restarts++
		p.log.Info("storage plugin started again", "restarts", p.restarts)
		if p.cfg.OnRestart != nil {
			p.cfg.OnRestart()
		}
	}
	p.active++
	return p.opener, p.epoch, nil
}

// release ends a use that current began. The last one out arms the idle
// stop.
func (p *Plugin) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active--
	if p.active > 0 || p.cfg.IdleTimeout <= 0 || p.client == nil || p.closed {
		return
	}
	p.idleSince = time.Now()
	if p.idle == nil {
		p.idle = time.AfterFunc(p.cfg.IdleTimeout, p.stopIdle)
	} else {
		p.idle.Reset(p.cfg.IdleTimeout)
	}
}

// stopIdle stops the plugin process if nothing used it for IdleTimeout. It
// is not a death: the next call launches a new process at once.
func (p *Plugin) stopIdle() {
	p.mu.Lock()
	c := p.client
	if p.active > 0 || c == nil || p.closed || time.Since(p.idleSince) < p.cfg.IdleTimeout {
		p.mu.Unlock()
		return
	}
	p.client = nil
	p.mu.Unlock()
	p.log.Debug("storage plugin idle; stopping it until the next request", "idle", p.cfg.IdleTimeout.String())
	c.Kill()
	if p.cfg.OnIdleStop != nil {
		p.cfg.OnIdleStop()
	}
}

// delay is the wait before restart attempt n (1-based): none for the first,
// then MinRestartDelay doubling up to MaxRestartDelay.
func (p *Plugin) delay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := p.cfg.MinRestartDelay
	if d <= 0 {
		d = 100 * time.Millisecond
	}
	for i := 2; i < n && d < p.maxDelay(); i++ {
		d *= 2
	}
	return min(d, p.maxDelay())
}

func (p *Plugin) maxDelay() time.Duration {
	if p.cfg.MaxRestartDelay > 0 {
		return p.cfg.MaxRestartDelay
	}
	return 30 * time.Second
}

// Health returns nil unless the plugin died and a restart is pending; then
// an error saying which attempt is next and when, which the daemon's
// /healthz reports. It starts nothing and never waits for a launch in
// progress. A plugin that died while idle is not reported: the next request
// starts it again at once.
func (p *Plugin) Health() error {
	p.hmu.Lock()
	rs := p.rs
	p.hmu.Unlock()
	if rs.down {
		return errors.New(rs.describe(p.cfg.Name, time.Now()))
	}
	return nil
}

// check is called after a transient error from the plugin launched as
// epoch: if the process no longer answers, it is killed so that the next
// call starts a new one.
func (p *Plugin) check(epoch uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil || p.epoch != epoch || p.client.Exited() {
		return
	}
	if err := p.rpc.Ping(); err != nil {
		p.log.Warn("storage plugin does not answer; stopping it", "err", err)
		p.client.Kill()
	}
}

func (p *Plugin) launch() error {
	cmd := exec.Command(p.cfg.Path, p.cfg.Args...)
	setProcAttr(cmd)
	timeout := p.cfg.StartTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	logger := newSlogAdapter(p.log, p.cfg.Name)
	cc := &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.VersionedPlugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           logger,
		StartTimeout:     timeout,
		SyncStdout:       lineLogger{l: p.log, level: slog.LevelInfo, msg: "plugin stdout"},
		SyncStderr:       lineLogger{l: p.log, level: slog.LevelInfo, msg: "plugin stderr"},
	}
	if p.cfg.SHA256 != "" {
		want, err := hex.DecodeString(p.cfg.SHA256)
		if err != nil || len(want) != sha256.Size {
			return fmt.Errorf("plugin %s: sha256 %q is not 64 hex digits", p.cfg.Name, p.cfg.SHA256)
		}
		cc.SecureConfig = &plugin.SecureConfig{Checksum: want, Hash: sha256.New()}
	}
	client := plugin.NewClient(cc)
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return p.startError(err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		client.Kill()
		return fmt.Errorf("plugin %s (%s): does not serve %q: %w", p.cfg.Name, p.cfg.Path, sdk.PluginName, err)
	}
	opener, ok := raw.(sdk.Opener)
	if !ok {
		client.Kill()
		return fmt.Errorf("plugin %s (%s): unexpected client type %T", p.cfg.Name, p.cfg.Path, raw)
	}
	p.client, p.rpc, p.opener = client, rpc, opener
	p.version = client.NegotiatedVersion()
	p.epoch++
	p.log.Debug("storage plugin started", "path", p.cfg.Path, "protocol", p.version)
	return nil
}

var pluginVersionRE = regexp.MustCompile(`Plugin version: (\d+)`)

// startError turns go-plugin's start-up failures into advice.
func (p *Plugin) startError(err error) error {
	if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		got, _ := fileSHA256(p.cfg.Path)
		return fmt.Errorf("plugin %s: refusing to run %s: its sha256 is %s, but the config pins %s; "+
			"check that the file is the one you meant, then update the pin", p.cfg.Name, p.cfg.Path, got, p.cfg.SHA256)
	}
	if m := pluginVersionRE.FindStringSubmatch(err.Error()); m != nil {
		theirs, _ := strconv.Atoi(m[1])
		return fmt.Errorf("plugin %s (%s) speaks storage protocol %d; this replicator speaks %d: "+
			"install a version of the plugin built for protocol %d, or a replicator that speaks protocol %d",
			p.cfg.Name, p.cfg.Path, theirs, sdk.ProtocolVersion, sdk.ProtocolVersion, theirs)
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("plugin %s: executable %s not found: check the plugin path in the config", p.cfg.Name, p.cfg.Path)
	}
	return fmt.Errorf("start plugin %s (%s): %w", p.cfg.Name, p.cfg.Path, err)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
