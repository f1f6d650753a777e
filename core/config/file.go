package config

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/dustin/go-humanize"
	"gopkg.in/yaml.v3"

	"github.com/sqlitereplicator/replicator/core/segment"
)

var errEOF = io.EOF // an empty file decodes to EOF: a config with nothing in it

// The YAML shapes. Strings for durations and sizes so that "30s", "24h"
// and "1GiB" parse with our own rules and errors name the line.
type fileConfig struct {
	Addr      *string               `yaml:"addr"`
	LogLevel  string                `yaml:"log-level"`
	LogFormat string                `yaml:"log-format"`
	Plugins   map[string]filePlugin `yaml:"plugins"`
	Defaults  fileSettings          `yaml:"defaults"`
	DBs       []fileDB              `yaml:"dbs"`
	Follow    []fileFollow          `yaml:"follow"`
}

type filePlugin struct {
	Path   string `yaml:"path"`
	SHA256 string `yaml:"sha256"`
}

type fileSettings struct {
	SyncInterval       string         `yaml:"sync-interval"`
	SnapshotInterval   string         `yaml:"snapshot-interval"`
	Retention          string         `yaml:"retention"`
	CompactionInterval string         `yaml:"compaction-interval"`
	CheckpointPages    string         `yaml:"checkpoint-pages"`
	MaxLocalSize       string         `yaml:"max-local-size"`
	Compression        string         `yaml:"compression"`
	Encryption         fileEncryption `yaml:"encryption"`
}

type fileEncryption struct {
	KeyFile string `yaml:"key-file"`
	KeyEnv  string `yaml:"key-env"`
}

type fileDB struct {
	Path         string `yaml:"path"`
	Dir          string `yaml:"dir"`
	Pattern      string `yaml:"pattern"`
	Recursive    bool   `yaml:"recursive"`
	fileSettings `yaml:",inline"`
	Replicas     []yaml.Node `yaml:"replicas"`
}

type fileFollow struct {
	Path       string         `yaml:"path"`
	URL        string         `yaml:"url"`
	Replica    yaml.Node      `yaml:"replica"`
	Interval   string         `yaml:"interval"`
	Encryption fileEncryption `yaml:"encryption"`
}

// parseDuration reads a duration like 1s, 30m or 720h; "0" is zero.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration like 1s, 30m or 720h", s)
	}
	return d, nil
}

// settings reads fs over defaults: a key given in fs replaces the default.
func (p *parser) settings(line int, fs fileSettings, defaults Settings) (Settings, error) {
	s := defaults
	where := p.at(line)
	for _, d := range []struct {
		key, val string
		dst      *time.Duration
	}{
		{"sync-interval", fs.SyncInterval, &s.SyncInterval},
		{"snapshot-interval", fs.SnapshotInterval, &s.SnapshotInterval},
		{"retention", fs.Retention, &s.Retention},
		{"compaction-interval", fs.CompactionInterval, &s.CompactionInterval},
	} {
		switch {
		case d.val == "":
			continue
		case d.val == "off" && d.key == "compaction-interval":
			*d.dst = -1
			continue
		}
		v, err := parseDuration(d.val)
		if err != nil {
			return s, fmt.Errorf("%s: %s %v", where, d.key, err)
		}
		if v == 0 && (d.key == "sync-interval" || d.key == "snapshot-interval") {
			return s, fmt.Errorf("%s: %s must be positive", where, d.key)
		}
		*d.dst = v
	}
	if fs.CheckpointPages != "" {
		n, err := strconv.ParseInt(fs.CheckpointPages, 10, 64)
		if err != nil || n < 1 {
			return s, fmt.Errorf("%s: checkpoint-pages %q must be a positive number of WAL pages, like 2000", where, fs.CheckpointPages)
		}
		s.CheckpointPages = n
	}
	if fs.MaxLocalSize == "unlimited" {
		s.MaxLocalSize = -1
	} else if fs.MaxLocalSize != "" {
		n, err := humanize.ParseBytes(fs.MaxLocalSize)
		if err != nil || n == 0 || n > 1<<62 {
			return s, fmt.Errorf("%s: max-local-size %q must be a size like 512MiB or 10GB, or unlimited", where, fs.MaxLocalSize)
		}
		s.MaxLocalSize = int64(n)
	}
	if fs.Compression != "" {
		if _, err := segment.ParseCompression(fs.Compression); err != nil {
			return s, fmt.Errorf("%s: compression %q: use lz4 (the default), zstd or none", where, fs.Compression)
		}
		s.Compression = fs.Compression
	}
	if e := fs.Encryption; e.KeyFile != "" || e.KeyEnv != "" {
		if e.KeyFile != "" && e.KeyEnv != "" {
			return s, fmt.Errorf("%s: encryption has both key-file and key-env; give one", where)
		}
		s.Encryption = Encryption(e)
	}
	return s, nil
}

// replica reads a replica mapping: type, name, plugin and sha256 are ours;
// every other key is a setting for the plugin, which rejects the ones it
// does not know.
func (p *parser) replica(n *yaml.Node) (ReplicaConfig, error) {
	where := p.at(n.Line)
	if n.Kind != yaml.MappingNode {
		return ReplicaConfig{}, fmt.Errorf("%s: a replica must be a mapping with a type", where)
	}
	rc := ReplicaConfig{Settings: map[string]string{}, Line: n.Line}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return ReplicaConfig{}, fmt.Errorf("%s: replica setting %q must be a single value", p.at(k.Line), k.Value)
		}
		switch k.Value {
		case "type":
			if pc, ok := p.plugins[v.Value]; ok {
				rc.Type, rc.Plugin, rc.SHA256 = "plugin", pc.Path, pc.SHA256
				if rc.Name == "" {
					rc.Name = v.Value
				}
				continue
			}
			t, ok := canonicalType(v.Value)
			if !ok {
				return ReplicaConfig{}, fmt.Errorf("%s: unknown replica type %q; use file, s3, gcs (gs), abs (azure), sftp, plugin, or a name listed under plugins", p.at(k.Line), v.Value)
			}
			rc.Type = t
		case "name":
			rc.Name = v.Value
		case "plugin":
			rc.Plugin = v.Value
		case "sha256":
			rc.SHA256 = v.Value
		case "url":
			u, err := ParseURL(v.Value)
			if err != nil {
				return ReplicaConfig{}, fmt.Errorf("%s: %v", p.at(k.Line), err)
			}
			rc.Type = u.Type
			for sk, sv := range u.Settings {
				rc.Settings[sk] = sv
			}
		default:
			rc.Settings[k.Value] = v.Value
		}
	}
	switch {
	case rc.Type == "":
		return ReplicaConfig{}, fmt.Errorf("%s: replica has no type (or url)", where)
	case rc.Type == "plugin" && rc.Plugin == "":
		return ReplicaConfig{}, fmt.Errorf("%s: a replica of type plugin needs plugin: PATH to the plugin executable", where)
	case rc.Type != "plugin" && (rc.Plugin != "" || rc.SHA256 != ""):
		return ReplicaConfig{}, fmt.Errorf("%s: plugin and sha256 apply only to type plugin", where)
	}
	return rc, nil
}
