package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/sqlitereplicator/replicator/sdk"
)

// keepaliveInterval is how often an idle or busy connection is probed.
// pkg/sftp calls take no context, so a connection that silently stopped
// answering (a dead NAT entry, a crashed host) would hang them forever;
// the probe closes such a connection, failing its calls as Unavailable.
const keepaliveInterval = 30 * time.Second

// pool holds one SSH connection and up to cfg.concurrency SFTP sessions on
// it. OpenSSH serves each session with its own single-threaded
// sftp-server, so several sessions run operations in parallel; a slot is
// taken per operation to keep within the limit. A connection or session
// found dead is dropped, and the next operation dials again: the call that
// met the failure returns Unavailable for the caller to retry.
type pool struct {
	cfg    *config
	sshCfg *ssh.ClientConfig
	slots  chan struct{}

	dialMu sync.Mutex // one dial at a time; the others wait and share it

	mu     sync.Mutex
	conn   *sshConn
	idle   []*session
	closed bool
}

type sshConn struct {
	client *ssh.Client
	done   chan struct{} // closed when the connection has ended
	dead   atomic.Bool   // set when a call found it unusable, before done
}

func (c *sshConn) alive() bool { return !c.dead.Load() && isOpen(c.done) }

// kill closes the connection and marks it dead at once: done closes only
// once x/crypto/ssh has wound the connection down, and a call arriving in
// between must not pick it again.
func (c *sshConn) kill() {
	c.dead.Store(true)
	c.client.Close()
}

// session is one SFTP session. Its client is safe for concurrent use, so a
// reader returned by Get keeps using it after the operation's slot is
// given back.
type session struct {
	conn   *sshConn
	c      *sftp.Client
	done   chan struct{} // closed when the session has ended
	broken atomic.Bool   // an operation saw the connection fail
	who    string
}

// close ends the session in the background: sftp's Close waits for the
// server to end the session, or for the connection to die.
func (s *session) close() { go s.c.Close() }

func (s *session) alive() bool { return !s.broken.Load() && isOpen(s.done) && s.conn.alive() }

func isOpen(done chan struct{}) bool {
	select {
	case <-done:
		return false
	default:
		return true
	}
}

func newPool(cfg *config, sshCfg *ssh.ClientConfig) *pool {
	return &pool{cfg: cfg, sshCfg: sshCfg, slots: make(chan struct{}, cfg.concurrency)}
}

// with runs fn on a live session while holding an operation slot.
func (p *pool) with(ctx context.Context, fn func(*session) error) error {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()
	s, err := p.session(ctx)
	if err != nil {
		return err
	}
	err = fn(s)
	p.release(s)
	return err
}

// session returns an idle live session, or opens one, dialling first when
// there is no live connection.
func (p *pool) session(ctx context.Context) (*session, error) {
	var dead []*session
	defer func() {
		for _, s := range dead {
			s.close()
		}
	}()
	p.mu.Lock()
	for len(p.idle) > 0 {
		s := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if s.alive() {
			p.mu.Unlock()
			return s, nil
		}
		dead = append(dead, s)
	}
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, sdk.Errorf(sdk.InvalidArgument, "sftp: store for %s is closed", p.cfg.who())
	}
	conn, err := p.connection(ctx)
	if err != nil {
		return nil, err
	}
	return p.openSession(ctx, conn)
}

// connection returns the live connection, dialling a new one if needed.
func (p *pool) connection(ctx context.Context) (*sshConn, error) {
	p.dialMu.Lock()
	defer p.dialMu.Unlock()
	p.mu.Lock()
	conn := p.conn
	p.mu.Unlock()
	if conn != nil && conn.alive() {
		return conn, nil
	}
	if conn != nil {
		conn.client.Close()
	}
	conn, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		conn.client.Close()
		return nil, sdk.Errorf(sdk.InvalidArgument, "sftp: store for %s is closed", p.cfg.who())
	}
	p.conn = conn
	p.mu.Unlock()
	return conn, nil
}

// openSession starts an SFTP session on conn. It does not wait on
// sftp.NewClient for longer than the connection lives, cfg.timeout or ctx:
// x/crypto/ssh can leave a channel open request unanswered forever when it
// races with the connection's end, so the call is abandoned instead (its
// goroutine stays blocked; this is rare).
func (p *pool) openSession(ctx context.Context, conn *sshConn) (*session, error) {
	type result struct {
		c   *sftp.Client
		err error
	}
	started := make(chan result, 1)
	go func() {
		c, err := sftp.NewClient(conn.client, sftp.UseConcurrentWrites(true))
		started <- result{c, err}
	}()
	abandon := func() {
		go func() {
			if r := <-started; r.c != nil {
				r.c.Close()
			}
		}()
	}
	timer := time.NewTimer(p.cfg.timeout)
	defer timer.Stop()
	var c *sftp.Client
	var err error
	select {
	case r := <-started:
		c, err = r.c, r.err
	case <-conn.done:
		abandon()
		conn.kill()
		return nil, sdk.Errorf(sdk.Unavailable, "sftp: start an sftp session on %s: connection lost; the next call reconnects", p.cfg.addr())
	case <-timer.C:
		abandon()
		conn.kill() // unresponsive: the next call dials afresh
		return nil, sdk.Errorf(sdk.Unavailable, "sftp: start an sftp session on %s: no answer within %s (setting \"timeout\"); the next call reconnects", p.cfg.addr(), p.cfg.timeout)
	case <-ctx.Done():
		abandon()
		return nil, fmt.Errorf("sftp: start an sftp session on %s: %w", p.cfg.addr(), ctx.Err())
	}
	if err != nil {
		var open *ssh.OpenChannelError
		switch {
		case !conn.alive() || isConnLost(err):
			conn.kill() // so that the next call dials afresh
			return nil, sdk.Errorf(sdk.Unavailable, "sftp: start an sftp session on %s: connection lost (%v); the next call reconnects", p.cfg.addr(), err)
		case errors.As(err, &open) && open.Reason == ssh.Prohibited:
			return nil, sdk.Errorf(sdk.Unavailable, "sftp: %s refused another session (%v): lower \"concurrency\" (%d) below the server's MaxSessions", p.cfg.addr(), err, p.cfg.concurrency)
		case strings.Contains(err.Error(), "subsystem request failed"):
			return nil, sdk.Errorf(sdk.InvalidArgument, "sftp: %s does not offer the sftp subsystem (%v): enable it in the server's sshd_config (Subsystem sftp)", p.cfg.addr(), err)
		}
		return nil, fmt.Errorf("sftp: start an sftp session on %s: %w", p.cfg.addr(), err)
	}
	s := &session{conn: conn, c: c, done: make(chan struct{}), who: p.cfg.who()}
	go func() {
		_ = c.Wait()
		close(s.done)
	}()
	return s, nil
}

// release returns s to the idle list, or closes it when it is dead, the
// connection was replaced or the store was closed.
func (p *pool) release(s *session) {
	p.mu.Lock()
	keep := s.alive() && !p.closed && s.conn == p.conn
	if keep {
		p.idle = append(p.idle, s)
	}
	p.mu.Unlock()
	if !keep {
		s.close()
	}
}

// dial connects and authenticates, within cfg.timeout and ctx.
func (p *pool) dial(ctx context.Context) (*sshConn, error) {
	addr := p.cfg.addr()
	d := net.Dialer{Timeout: p.cfg.timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sftp: connect to %s: %w", addr, ctx.Err())
		}
		return nil, sdk.Errorf(sdk.Unavailable, "sftp: cannot connect to %s (settings \"host\" and \"port\"): %v: check that an SSH server listens there and that the network allows it", addr, unwrapOp(err))
	}
	// The deadline bounds the handshake; cancelling ctx cuts it short.
	_ = nc.SetDeadline(time.Now().Add(p.cfg.timeout))
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	cc, chans, reqs, err := ssh.NewClientConn(nc, addr, p.sshCfg)
	if !stop() && err == nil {
		cc.Close()
		return nil, fmt.Errorf("sftp: connect to %s: %w", addr, ctx.Err())
	}
	if err != nil {
		nc.Close()
		return nil, p.handshakeError(ctx, err)
	}
	_ = nc.SetDeadline(time.Time{})
	conn := &sshConn{client: ssh.NewClient(cc, chans, reqs), done: make(chan struct{})}
	go func() {
		_ = conn.client.Wait()
		close(conn.done)
	}()
	go conn.keepalive(keepaliveInterval, p.cfg.timeout)
	return conn, nil
}

// handshakeError explains a failed SSH handshake: host key, credentials,
// or a server that is not (or not yet) speaking SSH.
func (p *pool) handshakeError(ctx context.Context, err error) error {
	addr := p.cfg.addr()
	var hk *hostKeyError
	var ne net.Error
	switch {
	case errors.As(err, &hk):
		return hk.sdkError()
	case strings.Contains(err.Error(), "unable to authenticate"):
		return p.authError()
	case ctx.Err() != nil:
		return fmt.Errorf("sftp: ssh handshake with %s: %w", addr, ctx.Err())
	case errors.As(err, &ne) && ne.Timeout():
		return sdk.Errorf(sdk.Unavailable, "sftp: ssh handshake with %s timed out after %s (setting \"timeout\"): check that %s port %d is an SSH server and not overloaded", addr, p.cfg.timeout, p.cfg.host, p.cfg.port)
	}
	return sdk.Errorf(sdk.Unavailable, "sftp: ssh handshake with %s failed: %v: check that \"host\" and \"port\" name an SSH server", addr, err)
}

// authError names the account and the credential settings to check; it
// never includes the password or passphrase.
func (p *pool) authError() error {
	var tried, check []string
	if p.cfg.keyPath != "" {
		tried = append(tried, "the key in \"key-path\" "+p.cfg.keyPath)
		check = append(check, "that the public key of \"key-path\" is in the authorized_keys of "+p.cfg.user+" on the server")
	}
	if p.cfg.password != "" {
		tried = append(tried, "the password")
		check = append(check, "\"password\"")
	}
	return sdk.Errorf(sdk.PermissionDenied, "sftp: the server rejected the login of %s (tried %s): check \"user\" and %s",
		p.cfg.who(), strings.Join(tried, " and "), strings.Join(check, ", and "))
}

// keepalive probes the connection every interval and closes it when the
// server does not answer within timeout.
func (c *sshConn) keepalive(interval, timeout time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		replied := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		timer := time.NewTimer(timeout)
		select {
		case err := <-replied:
			timer.Stop()
			if err != nil {
				c.kill()
				return
			}
		case <-timer.C:
			c.kill()
			return
		case <-c.done:
			timer.Stop()
			return
		}
	}
}

// close closes every session and the connection.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle, conn := p.idle, p.conn
	p.idle, p.conn = nil, nil
	p.mu.Unlock()
	// The connection goes first: closing a session waits for the server to
	// end it, which a server that stopped answering never does.
	if conn != nil {
		conn.kill()
	}
	for _, s := range idle {
		s.c.Close()
	}
}

// drop closes the current connection as if the network had failed; tests
// use it to check that the next call reconnects.
func (p *pool) drop() {
	p.mu.Lock()
	conn := p.conn
	p.mu.Unlock()
	if conn != nil {
		conn.kill()
		<-conn.done
	}
}

// fail maps err from an SFTP call into an error with a Code, saying what
// was being done. A lost connection marks the session broken and closes
// the connection, so that the next call dials afresh.
func (s *session) fail(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf(format, args...)
	var se *sdk.Error
	switch {
	case errors.As(err, &se), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("sftp: %s: %w", what, err)
	case errors.Is(err, os.ErrNotExist):
		return sdk.Errorf(sdk.NotFound, "sftp: %s: not found", what)
	case errors.Is(err, os.ErrPermission):
		return sdk.Errorf(sdk.PermissionDenied, "sftp: %s: permission denied for %s", what, s.who)
	case isConnLost(err) || !s.alive():
		// The connection goes too: a lost session nearly always means a
		// lost connection, which x/crypto/ssh may take a while to notice.
		s.broken.Store(true)
		s.conn.kill()
		return sdk.Errorf(sdk.Unavailable, "sftp: %s: connection to %s lost (%v); the next call reconnects", what, s.who, err)
	}
	return fmt.Errorf("sftp: %s: %w", what, err)
}

// isConnLost reports whether err means the session or connection is gone,
// as opposed to the server refusing one request.
func isConnLost(err error) bool {
	var ne net.Error
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, sftp.ErrSSHFxNoConnection) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.As(err, &ne)
}

// unwrapOp drops the *net.OpError wrapping that repeats the address.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
