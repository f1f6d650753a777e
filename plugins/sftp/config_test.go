package sftp

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sqlitereplicator/replicator/sdk"
)

// base is a complete, valid set of settings; cases change one thing.
func base(over map[string]string) map[string]string {
	s := map[string]string{
		"host": "sftp.example.com", "user": "backup", "key-path": "/keys/id_ed25519", "path": "/srv/replicas",
	}
	for k, v := range over {
		if v == "<unset>" {
			delete(s, k)
		} else {
			s[k] = v
		}
	}
	return s
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings map[string]string
		want     []string // fragments of the message
	}{
		{"unknown setting", base(map[string]string{"hostname": "x"}), []string{`unknown setting "hostname"`, "host, port, user"}},
		{"missing host", base(map[string]string{"host": "<unset>"}), []string{`"host" is required`}},
		{"host with port", base(map[string]string{"host": "example.com:2222"}), []string{`"host"`, `set "port"`}},
		{"host with user", base(map[string]string{"host": "me@example.com"}), []string{`"host"`, `"user"`}},
		{"port not a number", base(map[string]string{"port": "ssh"}), []string{`"port" "ssh"`, "1 to 65535"}},
		{"port out of range", base(map[string]string{"port": "70000"}), []string{`"port" "70000"`}},
		{"port zero", base(map[string]string{"port": "0"}), []string{`"port" "0"`}},
		{"missing user", base(map[string]string{"user": "<unset>"}), []string{`"user" is required`}},
		{"no credentials", base(map[string]string{"key-path": "<unset>"}), []string{"no credentials", "backup@sftp.example.com:22", `"key-path"`, `"password"`}},
		{"passphrase without key", base(map[string]string{"key-path": "<unset>", "password": "pw", "key-passphrase": "pp"}), []string{`"key-passphrase"`, `"key-path" is not`}},
		{"missing path", base(map[string]string{"path": "<unset>"}), []string{`"path" is required`}},
		{"path with NUL", base(map[string]string{"path": "/a\x00b"}), []string{`"path"`, "NUL"}},
		{"known-hosts and fingerprint", base(map[string]string{"known-hosts": "/kh", "host-key-fingerprint": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"}), []string{`"known-hosts" and "host-key-fingerprint"`}},
		{"bad fingerprint", base(map[string]string{"host-key-fingerprint": "aa:bb:cc"}), []string{`"host-key-fingerprint" "aa:bb:cc"`, "SHA256:", "ssh-keyscan -p 22 sftp.example.com"}},
		{"fingerprint wrong length", base(map[string]string{"host-key-fingerprint": "SHA256:abcd"}), []string{`"host-key-fingerprint"`}},
		{"insecure not a bool", base(map[string]string{"insecure-skip-host-key-check": "yes please"}), []string{`"insecure-skip-host-key-check" "yes please"`, "true or false"}},
		{"insecure with known-hosts", base(map[string]string{"insecure-skip-host-key-check": "true", "known-hosts": "/kh"}), []string{`"insecure-skip-host-key-check" is true`, `"known-hosts"`}},
		{"insecure with fingerprint", base(map[string]string{"insecure-skip-host-key-check": "true", "host-key-fingerprint": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"}), []string{`"host-key-fingerprint"`}},
		{"concurrency zero", base(map[string]string{"concurrency": "0"}), []string{`"concurrency" "0"`, "1 to 64"}},
		{"concurrency too high", base(map[string]string{"concurrency": "500"}), []string{`"concurrency" "500"`}},
		{"concurrency not a number", base(map[string]string{"concurrency": "many"}), []string{`"concurrency" "many"`}},
		{"timeout without unit", base(map[string]string{"timeout": "10"}), []string{`"timeout" "10"`, "10s"}},
		{"timeout negative", base(map[string]string{"timeout": "-1s"}), []string{`"timeout" "-1s"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.settings)
			if err == nil {
				t.Fatalf("parseConfig(%q) succeeded, want an error", tc.settings)
			}
			if sdk.CodeOf(err) != sdk.InvalidArgument {
				t.Errorf("code %v, want InvalidArgument: %v", sdk.CodeOf(err), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// Open reports the same error, before any connection.
			if _, oerr := Open(context.Background(), tc.settings); oerr == nil || oerr.Error() != err.Error() {
				t.Errorf("Open: %v, want %v", oerr, err)
			}
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	home, _ := os.UserHomeDir()
	c, err := parseConfig(base(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.port != 22 || c.concurrency != 4 || c.timeout != 30*time.Second || c.insecure || c.fingerprint != "" {
		t.Errorf("defaults: port %d concurrency %d timeout %s insecure %v fingerprint %q", c.port, c.concurrency, c.timeout, c.insecure, c.fingerprint)
	}
	if want := filepath.Join(home, ".ssh/known_hosts"); c.knownHosts != want || c.knownHostsExplicit {
		t.Errorf("known-hosts %q (explicit %v), want %q by default", c.knownHosts, c.knownHostsExplicit, want)
	}

	c, err = parseConfig(base(map[string]string{
		"host": "[::1]", "port": "2222", "path": "backups/", "known-hosts": "~/kh", "concurrency": "8", "timeout": "5s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.addr() != "[::1]:2222" || c.root != "backups" || c.knownHosts != filepath.Join(home, "kh") || c.concurrency != 8 || c.timeout != 5*time.Second {
		t.Errorf("parsed: addr %s root %q known-hosts %q concurrency %d timeout %s", c.addr(), c.root, c.knownHosts, c.concurrency, c.timeout)
	}

	c, err = parseConfig(base(map[string]string{"insecure-skip-host-key-check": "false", "host-key-fingerprint": " SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s= "}))
	if err != nil {
		t.Fatal(err)
	}
	if c.fingerprint != "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s" || c.knownHosts != "" {
		t.Errorf("fingerprint %q, known-hosts %q", c.fingerprint, c.knownHosts)
	}
}

// TestKeyFileErrors: problems with the key file are setting errors that
// name the file, found before connecting, and never show the passphrase.
func TestKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	encPath := legacyEncryptedKey(t, secretPassphrase)
	pubPath := filepath.Join(dir, "key.pub")
	sshPub, _ := ssh.NewPublicKey(priv.Public())
	write(t, pubPath, ssh.MarshalAuthorizedKey(sshPub))
	kh := filepath.Join(dir, "known_hosts")
	write(t, kh, nil)
	const passphrase = secretPassphrase

	for _, tc := range []struct {
		name     string
		settings map[string]string
		want     []string
	}{
		{"missing key file", map[string]string{"key-path": filepath.Join(dir, "nope")}, []string{`"key-path"`, filepath.Join(dir, "nope"), "no such file"}},
		{"public key given", map[string]string{"key-path": pubPath}, []string{`"key-path" ` + pubPath, "not the .pub"}},
		{"encrypted without passphrase", map[string]string{"key-path": encPath}, []string{encPath, "encrypted", `set "key-passphrase"`}},
		{"wrong passphrase", map[string]string{"key-path": encPath, "key-passphrase": "wrong-" + passphrase}, []string{`"key-passphrase"`, encPath, "check the passphrase"}},
		{"missing explicit known-hosts", map[string]string{"password": passphrase, "key-path": "<unset>", "known-hosts": filepath.Join(dir, "none")}, []string{"known-hosts file " + filepath.Join(dir, "none") + " does not exist", "ssh-keyscan", "host-key-fingerprint"}},
		{"unparsable known-hosts", map[string]string{"password": passphrase, "key-path": "<unset>", "known-hosts": pubPath}, []string{"known-hosts file " + pubPath, `"known-hosts"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			settings := base(tc.settings)
			if _, ok := tc.settings["known-hosts"]; !ok {
				settings["known-hosts"] = kh
			}
			_, err := Open(context.Background(), settings)
			if err == nil {
				t.Fatal("Open succeeded, want an error")
			}
			if sdk.CodeOf(err) != sdk.InvalidArgument {
				t.Errorf("code %v, want InvalidArgument: %v", sdk.CodeOf(err), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// legacyEncryptedKey writes a new ECDSA key in the legacy encrypted PEM
// format, whose key derivation is fast (OpenSSH's bcrypt takes seconds
// under the race detector). The server does not know the key.
func legacyEncryptedKey(t testing.TB, passphrase string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the legacy format is what makes the test fast, and ssh still reads it
	block, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", der, []byte(passphrase), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "legacy_encrypted_key")
	write(t, p, pem.EncodeToMemory(block))
	return p
}
