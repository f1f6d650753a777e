// Package config reads replicator's configuration: the YAML file and
// replica URLs, both turned into the same ReplicaConfig (a backend type and
// the settings its plugin receives).
package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
)

// ReplicaConfig is one replica: which backend, and the settings its
// plugin's Open receives.
type ReplicaConfig struct {
	// Name identifies the replica in logs, metrics and local state.
	Name string
	// Type is the canonical backend type: file, s3, gcs, abs, sftp or plugin.
	Type string
	// Plugin and SHA256 name a third-party plugin executable (Type plugin).
	Plugin string
	SHA256 string
	// Settings go to the plugin unchanged.
	Settings map[string]string
	// Prefix, when not empty, is prepended (with a slash) to every key the
	// replica stores: a database of a dir entry lives under its own path.
	Prefix string
	// Encryption names the key of the replica's objects: its database's
	// encryption setting, or a follow entry's.
	Encryption Encryption
	// Line is where the replica was defined in the config file (0 for a URL).
	Line int
}

// types maps every accepted type name to its canonical name.
func canonicalType(t string) (string, bool) {
	switch strings.ToLower(t) {
	case "file", "fs":
		return "file", true
	case "s3":
		return "s3", true
	case "gcs", "gs":
		return "gcs", true
	case "abs", "azure":
		return "abs", true
	case "sftp":
		return "sftp", true
	case "plugin":
		return "plugin", true
	}
	return "", false
}

// PluginName is the first-party plugin that serves a canonical type.
func PluginName(typ string) string {
	switch typ {
	case "file":
		return "fs"
	case "abs":
		return "azure"
	}
	return typ
}

const urlForms = "file:///DIR, s3://BUCKET/PATH, gs://BUCKET/PATH, abs://ACCOUNT@CONTAINER/PATH or sftp://USER@HOST[:PORT]/PATH"

// IsURL reports whether s looks like a replica URL rather than a path.
func IsURL(s string) bool { return strings.Contains(s, "://") }

// ParseURL turns a replica URL into a ReplicaConfig. Query parameters
// become settings (s3://b/p?endpoint=http://localhost:9000&region=x).
func ParseURL(raw string) (ReplicaConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return ReplicaConfig{}, fmt.Errorf("replica URL %q: %v; expected %s", Redact(raw), err, urlForms)
	}
	typ, ok := canonicalType(u.Scheme)
	if !ok || typ == "plugin" {
		return ReplicaConfig{}, fmt.Errorf("replica URL %q: unknown scheme %q; expected %s", Redact(raw), u.Scheme, urlForms)
	}
	rc := ReplicaConfig{Name: typ, Type: typ, Settings: map[string]string{}}
	for k, vs := range u.Query() {
		if len(vs) != 1 {
			return ReplicaConfig{}, fmt.Errorf("replica URL %q: setting %q is given %d times", Redact(raw), k, len(vs))
		}
		rc.Settings[k] = vs[0]
	}
	path := strings.TrimPrefix(u.Path, "/")
	set := func(k, v string) {
		if v != "" {
			rc.Settings[k] = v
		}
	}
	switch typ {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return ReplicaConfig{}, fmt.Errorf("replica URL %q: a file URL has no host; expected file:///ABSOLUTE/DIR", raw)
		}
		if u.Path == "" {
			return ReplicaConfig{}, fmt.Errorf("replica URL %q: no directory; expected file:///ABSOLUTE/DIR", raw)
		}
		rc.Settings["path"] = filepath.Clean(u.Path)
	case "s3", "gcs":
		if u.Host == "" {
			return ReplicaConfig{}, fmt.Errorf("replica URL %q: no bucket; expected %s://BUCKET/PATH", Redact(raw), u.Scheme)
		}
		rc.Settings["bucket"] = u.Host
		set("path", path)
	case "abs":
		if u.User == nil || u.User.Username() == "" || u.Host == "" {
			return ReplicaConfig{}, fmt.Errorf("replica URL %q: expected abs://ACCOUNT@CONTAINER/PATH", Redact(raw))
		}
		rc.Settings["account-name"] = u.User.Username()
		rc.Settings["container"] = u.Host
		set("path", path)
	case "sftp":
		if u.Hostname() == "" || u.User == nil || u.User.Username() == "" {
			return ReplicaConfig{}, fmt.Errorf("replica URL %q: expected sftp://USER@HOST[:PORT]/PATH", Redact(raw))
		}
		rc.Settings["host"] = u.Hostname()
		set("port", u.Port())
		rc.Settings["user"] = u.User.Username()
		if pw, ok := u.User.Password(); ok {
			rc.Settings["password"] = pw
		}
		rc.Settings["path"] = "/" + path
	}
	return rc, nil
}

// secretKeys are settings whose values never appear in logs or output.
func isSecret(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"secret", "password", "passphrase", "token", "account-key", "connection-string", "sas", "credentials-json"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// Redact returns s (a URL) with any password or secret query value
// replaced, for printing.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	q := u.Query()
	for k := range q {
		if isSecret(k) {
			q.Set(k, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// RedactSettings returns settings with secret values replaced, for
// printing.
func RedactSettings(s map[string]string) map[string]string {
	out := make(map[string]string, len(s))
	for k, v := range s {
		if isSecret(k) {
			v = "REDACTED"
		}
		out[k] = v
	}
	return out
}

// String describes the replica without secrets.
func (rc ReplicaConfig) String() string {
	s := RedactSettings(rc.Settings)
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(rc.Type)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, s[k])
	}
	if rc.Prefix != "" {
		fmt.Fprintf(&b, " prefix=%s", rc.Prefix)
	}
	return b.String()
}
