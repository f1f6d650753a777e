package sftp

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Defaults of the optional settings.
const (
	defaultPort        = 22
	defaultConcurrency = 4
	maxConcurrency     = 64
	defaultTimeout     = 30 * time.Second
	defaultKnownHosts  = "~/.ssh/known_hosts"
)

// settingNames are every setting the backend accepts, in the order the
// documentation lists them; anything else is rejected so that a typo does
// not silently fall back to a default (say, host key checking).
var settingNames = []string{
	"host", "port", "user", "password", "key-path", "key-passphrase", "path",
	"known-hosts", "host-key-fingerprint", "insecure-skip-host-key-check",
	"concurrency", "timeout",
}

// config is the validated form of the settings. It holds the password and
// passphrase, so it is never formatted into errors or logs.
type config struct {
	host, user string
	port       int
	password   string
	keyPath    string
	passphrase string
	root       string

	// Exactly one host key policy applies: a known_hosts file (the
	// default), a pinned fingerprint, or none when insecure.
	knownHosts         string
	knownHostsExplicit bool // a missing file is an error only when the user named it
	fingerprint        string
	insecure           bool

	concurrency int
	timeout     time.Duration
}

// addr is host:port for dialling and for messages.
func (c *config) addr() string { return net.JoinHostPort(c.host, strconv.Itoa(c.port)) }

// who names the account for messages: user@host:port.
func (c *config) who() string { return c.user + "@" + c.addr() }

func invalid(format string, args ...any) error {
	return sdk.Errorf(sdk.InvalidArgument, "sftp: "+format, args...)
}

// parseConfig validates settings. It reads no files: the key and the
// known_hosts file are loaded when connecting, so that their errors name
// the path as well as the setting.
func parseConfig(settings map[string]string) (*config, error) {
	for k := range settings {
		if !slices.Contains(settingNames, k) {
			return nil, invalid("unknown setting %q (the sftp backend takes %s)", k, strings.Join(settingNames, ", "))
		}
	}
	get := func(k string) string { return strings.TrimSpace(settings[k]) }
	c := &config{
		port: defaultPort, concurrency: defaultConcurrency, timeout: defaultTimeout,
		// Secrets are taken as written: spaces may be part of them.
		password: settings["password"], passphrase: settings["key-passphrase"],
	}

	c.host = strings.TrimSuffix(strings.TrimPrefix(get("host"), "["), "]")
	switch {
	case c.host == "":
		return nil, invalid("setting \"host\" is required: the SSH server's name or IP address")
	case strings.Contains(c.host, "/") || strings.Contains(c.host, "@"):
		return nil, invalid("setting \"host\" %q must be a bare host name or IP address (put the user in \"user\" and the directory in \"path\")", c.host)
	case strings.Contains(c.host, ":") && net.ParseIP(c.host) == nil:
		return nil, invalid("setting \"host\" %q must not include a port: set \"port\" instead", c.host)
	}
	if s := get("port"); s != "" {
		p, err := strconv.Atoi(s)
		if err != nil || p < 1 || p > 65535 {
			return nil, invalid("setting \"port\" %q must be a TCP port number from 1 to 65535 (default %d)", s, defaultPort)
		}
		c.port = p
	}
	if c.user = get("user"); c.user == "" {
		return nil, invalid("setting \"user\" is required: the account to log in as on %s", c.host)
	}

	c.keyPath = get("key-path")
	if c.password == "" && c.keyPath == "" {
		return nil, invalid("no credentials for %s: set \"key-path\" (a private key file, with \"key-passphrase\" if it is encrypted) or \"password\"", c.who())
	}
	if c.passphrase != "" && c.keyPath == "" {
		return nil, invalid("setting \"key-passphrase\" is set but \"key-path\" is not: name the encrypted private key file in \"key-path\"")
	}

	root := get("path")
	if root == "" {
		return nil, invalid("setting \"path\" is required: the directory on the server to replicate into (absolute, or relative to the login directory)")
	}
	if strings.ContainsRune(root, 0) {
		return nil, invalid("setting \"path\" %q contains a NUL byte", root)
	}
	c.root = path.Clean(root)

	if err := c.parseHostKeyPolicy(get); err != nil {
		return nil, err
	}

	if s := get("concurrency"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxConcurrency {
			return nil, invalid("setting \"concurrency\" %q must be a whole number from 1 to %d (default %d; OpenSSH allows 10 sessions per connection unless MaxSessions says otherwise)", s, maxConcurrency, defaultConcurrency)
		}
		c.concurrency = n
	}
	if s := get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, invalid("setting \"timeout\" %q must be a positive duration such as 10s or 1m (default %s)", s, defaultTimeout)
		}
		c.timeout = d
	}
	return c, nil
}

// parseHostKeyPolicy picks how the server is authenticated. Verification
// is on unless insecure-skip-host-key-check is explicitly true, and the
// settings that choose a policy must not contradict each other.
func (c *config) parseHostKeyPolicy(get func(string) string) error {
	kh, fp := get("known-hosts"), get("host-key-fingerprint")
	if s := get("insecure-skip-host-key-check"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return invalid("setting \"insecure-skip-host-key-check\" %q must be true or false", s)
		}
		c.insecure = b
	}
	switch {
	case c.insecure && (kh != "" || fp != ""):
		return invalid("setting \"insecure-skip-host-key-check\" is true but %s is set too: remove one (verification is safer)", oneOf(kh, fp))
	case kh != "" && fp != "":
		return invalid("settings \"known-hosts\" and \"host-key-fingerprint\" are both set: use one way of checking the server's host key")
	case fp != "":
		b64, ok := strings.CutPrefix(fp, "SHA256:")
		raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
		if !ok || err != nil || len(raw) != 32 {
			return invalid("setting \"host-key-fingerprint\" %q must be a SHA256 fingerprint as ssh-keygen prints it, like SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s (see: ssh-keyscan -p %d %s | ssh-keygen -lf -)", fp, c.port, c.host)
		}
		c.fingerprint = "SHA256:" + base64.RawStdEncoding.EncodeToString(raw)
	case !c.insecure:
		c.knownHosts, c.knownHostsExplicit = kh, kh != ""
		if kh == "" {
			c.knownHosts = defaultKnownHosts
		}
		p, err := expandHome(c.knownHosts)
		if err != nil {
			return invalid("setting \"known-hosts\" %q: %v", c.knownHosts, err)
		}
		c.knownHosts = p
	}
	return nil
}

func oneOf(kh, fp string) string {
	if kh != "" {
		return "\"known-hosts\""
	}
	return "\"host-key-fingerprint\""
}

// expandHome resolves a leading ~/ the way a shell would, since paths in a
// config file are often written that way.
func expandHome(p string) (string, error) {
	rest, ok := strings.CutPrefix(p, "~")
	if !ok || (rest != "" && rest[0] != '/') {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot expand ~: %w", err)
	}
	return filepath.Join(home, rest), nil
}

// knownHostsFileExists reports whether the known_hosts file should be used:
// a default file that does not exist is treated as empty, so that the
// unknown-host error can show the server's fingerprint and the fix.
func (c *config) knownHostsFileExists() (bool, error) {
	_, err := os.Stat(c.knownHosts)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist) && !c.knownHostsExplicit:
		return false, nil
	case errors.Is(err, os.ErrNotExist):
		return false, invalid("known-hosts file %s does not exist: create it with `ssh-keyscan -p %d %s >> %s` (after checking the fingerprint), or set \"host-key-fingerprint\"", c.knownHosts, c.port, c.host, c.knownHosts)
	default:
		return false, invalid("cannot read known-hosts file %s: %v", c.knownHosts, err)
	}
}
