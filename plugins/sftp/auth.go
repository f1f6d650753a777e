package sftp

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sqlitereplicator/replicator/sdk"
)

// opensshHostKeyOrder is the host key algorithms in OpenSSH's own order of
// preference. Offering them in this order makes the server present the key
// whose fingerprint `ssh` shows on a first connection, which is the one a
// user is most likely to have pinned or added to known_hosts.
var opensshHostKeyOrder = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// clientConfig builds the ssh client configuration: credentials and the
// host key policy. It reads the key file and the known_hosts file, whose
// problems are reported as setting errors.
func (c *config) clientConfig() (*ssh.ClientConfig, error) {
	auth, err := c.authMethods()
	if err != nil {
		return nil, err
	}
	check, algos, err := c.hostKeyCheck()
	if err != nil {
		return nil, err
	}
	return &ssh.ClientConfig{
		User:              c.user,
		Auth:              auth,
		HostKeyCallback:   check,
		HostKeyAlgorithms: algos,
		Timeout:           c.timeout,
		ClientVersion:     "SSH-2.0-replicator-sftp",
	}, nil
}

// authMethods offers the key first (the usual setup for automation), then
// the password both as "password" and as a keyboard-interactive answer,
// since PAM-based servers often accept only the latter.
func (c *config) authMethods() ([]ssh.AuthMethod, error) {
	var methods []ssh.AuthMethod
	if c.keyPath != "" {
		signer, err := c.loadKey()
		if err != nil {
			return nil, err
		}
		methods = append(methods, ssh.PublicKeys(signer))
	}
	if c.password != "" {
		pw := c.password
		methods = append(methods, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] { // a hidden prompt asks for the password
						answers[i] = pw
					}
				}
				return answers, nil
			}))
	}
	return methods, nil
}

// loadKey reads and decrypts the private key. Errors name the file and the
// setting to fix, never the passphrase.
func (c *config) loadKey() (ssh.Signer, error) {
	p, err := expandHome(c.keyPath)
	if err != nil {
		return nil, invalid("setting \"key-path\" %q: %v", c.keyPath, err)
	}
	pem, err := os.ReadFile(p)
	if err != nil {
		return nil, invalid("cannot read the private key in \"key-path\" %s: %v", p, errors.Unwrap(err))
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil
	case errors.As(err, &missing) && c.passphrase == "":
		return nil, invalid("the private key in \"key-path\" %s is encrypted: set \"key-passphrase\"", p)
	case errors.As(err, &missing):
		signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, []byte(c.passphrase))
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, invalid("\"key-passphrase\" does not decrypt the private key in \"key-path\" %s: check the passphrase", p)
		}
		if err != nil { // a wrong passphrase can also end here, past the padding check
			return nil, invalid("cannot use the private key in \"key-path\" %s with \"key-passphrase\" (%v): check the passphrase", p, err)
		}
		return signer, nil
	default:
		return nil, invalid("\"key-path\" %s holds no private key ssh can use (%v): name the private key file (not the .pub) in OpenSSH, PEM or PKCS#8 format", p, err)
	}
}

// hostKeyError is a failed check of the server's host key. It is
// PermissionDenied: the server is not trusted, and retrying will not help.
type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string { return e.msg }

func (e *hostKeyError) sdkError() error { return sdk.Errorf(sdk.PermissionDenied, "%s", e.msg) }

// hostKeyCheck returns the host key callback for the configured policy and
// the host key algorithms to offer.
func (c *config) hostKeyCheck() (ssh.HostKeyCallback, []string, error) {
	switch {
	case c.insecure:
		return ssh.InsecureIgnoreHostKey(), nil, nil
	case c.fingerprint != "":
		return func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got := ssh.FingerprintSHA256(key)
			if got == c.fingerprint {
				return nil
			}
			return &hostKeyError{fmt.Sprintf("sftp: host key of %s does not match \"host-key-fingerprint\": the server presented %s %s, want %s. If the server's key changed, or you pinned the fingerprint of another key type, pin this one after checking it on the server (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub); otherwise someone may be intercepting the connection",
				c.addr(), key.Type(), got, c.fingerprint, keyFileType(key))}
		}, opensshHostKeyOrder, nil
	}
	exists, err := c.knownHostsFileExists()
	if err != nil {
		return nil, nil, err
	}
	if !exists {
		return func(_ string, _ net.Addr, key ssh.PublicKey) error {
			return c.unknownHost(key, "there is no known-hosts file "+c.knownHosts)
		}, opensshHostKeyOrder, nil
	}
	cb, err := knownhosts.New(c.knownHosts)
	if err != nil {
		return nil, nil, invalid("cannot use known-hosts file %s (setting \"known-hosts\"): %v", c.knownHosts, err)
	}
	known := c.knownKeys(cb)
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		var revoked *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &revoked):
			return &hostKeyError{fmt.Sprintf("sftp: host key %s %s of %s is marked @revoked in known-hosts file %s (line %d): refusing to connect",
				key.Type(), ssh.FingerprintSHA256(key), c.addr(), c.knownHosts, revoked.Revoked.Line)}
		case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
			return c.unknownHost(key, "known-hosts file "+c.knownHosts+" has no entry for it")
		case errors.As(err, &keyErr):
			w := keyErr.Want[0]
			return &hostKeyError{fmt.Sprintf("sftp: HOST KEY MISMATCH for %s: the server presented %s %s, but known-hosts file %s lists %s %s for it (line %d). The server's key changed or someone is intercepting the connection; refusing to connect. If the change is expected, remove the old entry (ssh-keygen -R '%s' -f %s) and add the new key after checking its fingerprint",
				c.addr(), key.Type(), ssh.FingerprintSHA256(key), c.knownHosts, w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Line, knownhosts.Normalize(c.addr()), c.knownHosts)}
		default:
			return &hostKeyError{fmt.Sprintf("sftp: checking the host key of %s against known-hosts file %s: %v", c.addr(), c.knownHosts, err)}
		}
	}, hostKeyAlgorithms(known), nil
}

func (c *config) unknownHost(key ssh.PublicKey, why string) error {
	fp := ssh.FingerprintSHA256(key)
	return &hostKeyError{fmt.Sprintf("sftp: the host key of %s is unknown: the server presented %s %s and %s. If that is the server's key (check with ssh-keygen -lf on the server), add it with `ssh-keyscan -p %d %s >> %s`, or set host-key-fingerprint: %s",
		c.addr(), key.Type(), fp, why, c.port, c.host, c.knownHosts, fp)}
}

// knownKeys returns the keys the known_hosts file lists for the server,
// found by checking a key that cannot match: the mismatch error lists
// them. (The knownhosts package has no lookup of its own.)
func (c *config) knownKeys(cb ssh.HostKeyCallback) []ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var keyErr *knownhosts.KeyError
	if !errors.As(cb(c.addr(), &net.TCPAddr{IP: net.IPv4zero, Port: c.port}, probe), &keyErr) {
		return nil
	}
	keys := make([]ssh.PublicKey, len(keyErr.Want))
	for i, w := range keyErr.Want {
		keys[i] = w.Key
	}
	return keys
}

// hostKeyAlgorithms restricts the negotiation to the types of the keys
// known for the server, so that a server with several host keys presents
// one we can check instead of failing as a mismatch. With none known, the
// server presents the key OpenSSH would show, for the unknown-host error.
func hostKeyAlgorithms(known []ssh.PublicKey) []string {
	var algos []string
	for _, a := range opensshHostKeyOrder {
		for _, k := range known {
			t := k.Type()
			if t == a || (t == ssh.KeyAlgoRSA && (a == ssh.KeyAlgoRSASHA512 || a == ssh.KeyAlgoRSASHA256)) {
				algos = append(algos, a)
				break
			}
		}
	}
	if len(algos) == 0 {
		return opensshHostKeyOrder
	}
	return slices.Clip(algos)
}

// keyFileType is the name OpenSSH gives a host key file of key's type.
func keyFileType(key ssh.PublicKey) string {
	switch t := key.Type(); {
	case t == ssh.KeyAlgoED25519:
		return "ed25519"
	case strings.HasPrefix(t, "ecdsa"):
		return "ecdsa"
	default:
		return "rsa"
	}
}
