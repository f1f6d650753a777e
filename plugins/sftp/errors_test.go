package sftp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// Recognisable secrets: no error or log line may contain them.
const (
	secretPassword   = "pw-SECRET-7f3a9c"
	secretPassphrase = "pp-SECRET-51d2e0"
)

// hostKey returns the test server's host key, from its known_hosts file.
func (s server) hostKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	data, err := os.ReadFile(s.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	_, _, key, _, _, err := ssh.ParseKnownHosts(data)
	if err != nil {
		t.Fatalf("parse %s: %v", s.knownHosts, err)
	}
	return key
}

// logCapture makes slog's default logger write to a buffer for the test.
func logCapture(t *testing.T) *syncBuffer {
	t.Helper()
	var buf syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// listener serves each connection with fn, for endpoints that are not
// SSH servers; it returns the port.
func listener(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fn(c)
			}()
		}
	}()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestOpenErrors checks the errors of stores that cannot be opened: each
// has the right code and says what failed and what to check.
func TestOpenErrors(t *testing.T) {
	srv := testServer(t)
	dir := t.TempDir()
	admin := srv.openAdmin(t)
	if _, err := admin.Put(t.Context(), "not-a-dir", strings.NewReader("x"), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Delete(context.Background(), "not-a-dir") })

	// A key the server does not know.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(other, "")
	otherKey := filepath.Join(dir, "other_key")
	write(t, otherKey, pem.EncodeToMemory(block))

	// The known_hosts of another server at this address.
	_, imposter, _ := ed25519.GenerateKey(rand.Reader)
	imposterPub, _ := ssh.NewPublicKey(imposter.Public())
	mismatch := filepath.Join(dir, "known_hosts_mismatch")
	write(t, mismatch, []byte("[127.0.0.1]:"+srv.port+" "+string(ssh.MarshalAuthorizedKey(imposterPub))))
	empty := filepath.Join(dir, "known_hosts_empty")
	write(t, empty, nil)

	hostFP := ssh.FingerprintSHA256(srv.hostKey(t))
	who := srv.user + "@" + srv.host + ":" + srv.port
	silent := listener(t, func(c net.Conn) { time.Sleep(5 * time.Second) })
	http := listener(t, func(c net.Conn) { c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) })
	closed := freePort(t)

	for _, tc := range []struct {
		name string
		over map[string]string
		code sdk.Code
		want []string
	}{
		{"under a file", map[string]string{"path": path.Join(srv.root, "not-a-dir/sub")}, sdk.InvalidArgument,
			[]string{"not-a-dir/sub", `"path"`}},
		{"path is a file", map[string]string{"path": path.Join(srv.root, "not-a-dir")}, sdk.InvalidArgument,
			[]string{"not-a-dir", `"path"`, "not a directory"}},
		{"unknown key", map[string]string{"key-path": otherKey}, sdk.PermissionDenied,
			[]string{who, "rejected the login", `"key-path" ` + otherKey, "authorized_keys", `"user"`}},
		{"wrong password", map[string]string{"key-path": "", "password": secretPassword}, sdk.PermissionDenied,
			[]string{who, "rejected the login", "the password", `check "user" and "password"`}},
		{"wrong user", map[string]string{"user": "nobody-here"}, sdk.PermissionDenied,
			[]string{"nobody-here@" + srv.host + ":" + srv.port, "rejected the login"}},
		{"connection refused", map[string]string{"port": closed, "password": secretPassword}, sdk.Unavailable,
			[]string{"cannot connect to 127.0.0.1:" + closed, `"host" and "port"`, "refused"}},
		{"not an ssh server", map[string]string{"port": http, "password": secretPassword}, sdk.Unavailable,
			[]string{"ssh handshake with 127.0.0.1:" + http + " failed", "SSH server"}},
		{"silent server", map[string]string{"port": silent, "timeout": "300ms", "password": secretPassword}, sdk.Unavailable,
			[]string{"127.0.0.1:" + silent, "timed out after 300ms", `"timeout"`}},
		{"unknown host key", map[string]string{"known-hosts": empty}, sdk.PermissionDenied,
			[]string{"host key of " + srv.host + ":" + srv.port + " is unknown", hostFP, empty, "ssh-keyscan -p " + srv.port, "host-key-fingerprint: " + hostFP}},
		{"host key mismatch", map[string]string{"known-hosts": mismatch}, sdk.PermissionDenied,
			[]string{"HOST KEY MISMATCH", hostFP, ssh.FingerprintSHA256(imposterPub), mismatch, "intercepting"}},
		{"wrong fingerprint", map[string]string{"known-hosts": "", "host-key-fingerprint": ssh.FingerprintSHA256(imposterPub)}, sdk.PermissionDenied,
			[]string{"does not match \"host-key-fingerprint\"", hostFP, ssh.FingerprintSHA256(imposterPub)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := logCapture(t)
			settings := srv.settings(srv.root)
			for k, v := range tc.over {
				if v == "" {
					delete(settings, k)
				} else {
					settings[k] = v
				}
			}
			start := time.Now()
			st, err := Open(t.Context(), settings)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Open took %s to fail", d)
			}
			t.Logf("error: %v", err)
			if got := sdk.CodeOf(err); got != tc.code {
				t.Errorf("code %v, want %v", got, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q", w)
				}
			}
			if strings.Contains(err.Error()+logs.String(), "SECRET") {
				t.Errorf("a secret appears in the error or the log:\n%v\n%s", err, logs)
			}
		})
	}
}

// TestSecretsNotShown triggers failures through the plugin process with
// recognisable secrets and checks that neither the errors nor anything
// logged (by the plugin or the host) contains them.
func TestSecretsNotShown(t *testing.T) {
	srv := testServer(t)
	logs := logCapture(t)
	p := plugintest.Launch(t, "sftp") // the host logs to slog's default logger
	encKey := legacyEncryptedKey(t, secretPassphrase)
	for _, settings := range []map[string]string{
		{"host": srv.host, "port": srv.port, "user": srv.user, "password": secretPassword, "known-hosts": srv.knownHosts, "path": srv.root},
		{"host": srv.host, "port": srv.port, "user": "nobody-here", "key-path": encKey, "key-passphrase": secretPassphrase, "password": secretPassword, "known-hosts": srv.knownHosts, "path": srv.root},
		{"host": srv.host, "port": srv.port, "user": srv.user, "key-path": encKey, "key-passphrase": "x" + secretPassphrase, "known-hosts": srv.knownHosts, "path": srv.root},
		{"host": srv.host, "port": freePort(t), "user": srv.user, "password": secretPassword, "known-hosts": srv.knownHosts, "path": srv.root},
		{"host": srv.host, "port": srv.port, "user": srv.user, "password": secretPassword, "insecure-skip-host-key-check": "true", "path": srv.root + "/missing"},
		{"host": srv.host, "port": srv.port, "user": srv.user, "password": secretPassword, "key-passphrase": secretPassphrase, "path": srv.root},
	} {
		_, err := p.Open(t.Context(), settings)
		if err == nil {
			t.Fatalf("Open(%s) succeeded, want an error", settings["user"])
		}
		t.Logf("error: %v", err)
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error shows a secret: %v", err)
		}
	}
	if strings.Contains(logs.String(), "SECRET") {
		t.Errorf("the log shows a secret:\n%s", logs)
	}
}

// encryptedKey writes the test client key encrypted with secretPassphrase
// in OpenSSH's format. ssh-keygen -a 1 keeps the bcrypt key derivation to
// one round: the default takes seconds under the race detector.
func (s server) encryptedKey(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(s.key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "encrypted_key")
	write(t, p, data)
	out, err := exec.Command("ssh-keygen", "-q", "-p", "-a", "1", "-P", "", "-N", secretPassphrase, "-f", p).CombinedOutput()
	if err != nil {
		t.Skipf("ssh-keygen cannot encrypt a key: %v: %s", err, out)
	}
	return p
}

// TestHostKeyPolicies opens stores with each way of trusting the server.
func TestHostKeyPolicies(t *testing.T) {
	srv := testServer(t)
	logs := logCapture(t)
	open := func(over map[string]string) error {
		settings := srv.settings(srv.root)
		for k, v := range over {
			if v == "" {
				delete(settings, k)
			} else {
				settings[k] = v
			}
		}
		st, err := Open(t.Context(), settings)
		if err == nil {
			st.Close()
		}
		return err
	}
	if err := open(map[string]string{"known-hosts": "", "host-key-fingerprint": ssh.FingerprintSHA256(srv.hostKey(t))}); err != nil {
		t.Errorf("pinned fingerprint: %v", err)
	}
	if strings.Contains(logs.String(), "insecure") {
		t.Errorf("warning logged without insecure-skip-host-key-check:\n%s", logs)
	}
	for range 2 {
		if err := open(map[string]string{"known-hosts": "", "insecure-skip-host-key-check": "true"}); err != nil {
			t.Errorf("insecure: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN msg=\"sftp: host key checking is disabled"); n != 2 {
		t.Errorf("%d warnings for two insecure opens, want 2:\n%s", n, logs)
	}

	// No known-hosts setting and no ~/.ssh/known_hosts: the error gives the
	// fingerprint and the fix.
	home := t.TempDir()
	t.Setenv("HOME", home)
	err := open(map[string]string{"known-hosts": ""})
	if sdk.CodeOf(err) != sdk.PermissionDenied || !strings.Contains(err.Error(), "no known-hosts file "+filepath.Join(home, ".ssh/known_hosts")) ||
		!strings.Contains(err.Error(), ssh.FingerprintSHA256(srv.hostKey(t))) {
		t.Errorf("default known-hosts missing: %v (code %v), want PermissionDenied naming the file and the fingerprint", err, sdk.CodeOf(err))
	}
}

// TestEncryptedKey logs in with an encrypted key and its passphrase.
func TestEncryptedKey(t *testing.T) {
	srv := testServer(t)
	settings := srv.settings(srv.root)
	settings["key-path"], settings["key-passphrase"] = srv.encryptedKey(t), secretPassphrase
	st, err := Open(t.Context(), settings)
	if err != nil {
		t.Fatalf("encrypted key with its passphrase: %v", err)
	}
	st.Close()
}
