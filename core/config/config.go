package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the configuration file.
type Config struct {
	DBs []DBConfig
}

// DBConfig is one database to replicate.
type DBConfig struct {
	Path             string
	SyncInterval     time.Duration
	SnapshotInterval time.Duration
	Retention        time.Duration
	Replicas         []ReplicaConfig
	Line             int
}

// The YAML shapes. Strings for durations so that "30s" and "24h" parse with
// time.ParseDuration and errors name the line.
type fileConfig struct {
	DBs []fileDB `yaml:"dbs"`
}

type fileDB struct {
	Path             string      `yaml:"path"`
	SyncInterval     string      `yaml:"sync-interval"`
	SnapshotInterval string      `yaml:"snapshot-interval"`
	Retention        string      `yaml:"retention"`
	Replicas         []yaml.Node `yaml:"replicas"`
}

// Load reads the config file at path, expanding ${VAR} and $VAR from the
// environment. Unknown keys are errors that name the key and its line.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, b)
}

// Parse parses config file contents; name is used in errors.
func Parse(name string, b []byte) (*Config, error) {
	expanded := os.Expand(string(b), func(k string) string {
		if k == "$" {
			return "$"
		}
		return os.Getenv(k)
	})
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(expanded), &root); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader([]byte(expanded)))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	dbNodes := dbNodes(&root)
	c := &Config{}
	for i, fd := range fc.DBs {
		line := 0
		if i < len(dbNodes) {
			line = dbNodes[i].Line
		}
		where := fmt.Sprintf("%s:%d", name, line)
		if fd.Path == "" {
			return nil, fmt.Errorf("%s: database entry has no path", where)
		}
		abs, err := filepath.Abs(fd.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: path %q: %v", where, fd.Path, err)
		}
		d := DBConfig{Path: abs, Line: line}
		for _, dur := range []struct {
			key string
			s   string
			dst *time.Duration
		}{{"sync-interval", fd.SyncInterval, &d.SyncInterval}, {"snapshot-interval", fd.SnapshotInterval, &d.SnapshotInterval}, {"retention", fd.Retention, &d.Retention}} {
			if dur.s == "" {
				continue
			}
			v, err := time.ParseDuration(dur.s)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("%s: %s %q is not a duration like 1s, 30m or 24h", where, dur.key, dur.s)
			}
			*dur.dst = v
		}
		if len(fd.Replicas) == 0 {
			return nil, fmt.Errorf("%s: database %s has no replicas", where, fd.Path)
		}
		for j, n := range fd.Replicas {
			rc, err := replicaFromNode(name, &n)
			if err != nil {
				return nil, err
			}
			if rc.Name == "" {
				rc.Name = rc.Type
				if len(fd.Replicas) > 1 {
					rc.Name += strconv.Itoa(j + 1)
				}
			}
			d.Replicas = append(d.Replicas, rc)
		}
		c.DBs = append(c.DBs, d)
	}
	return c, nil
}

func dbNodes(root *yaml.Node) []*yaml.Node {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "dbs" {
			return m.Content[i+1].Content
		}
	}
	return nil
}

// replicaFromNode reads a replica mapping: type, name, plugin and sha256
// are ours; every other key is a setting for the plugin, which rejects the
// ones it does not know.
func replicaFromNode(file string, n *yaml.Node) (ReplicaConfig, error) {
	where := fmt.Sprintf("%s:%d", file, n.Line)
	if n.Kind != yaml.MappingNode {
		return ReplicaConfig{}, fmt.Errorf("%s: a replica must be a mapping with a type", where)
	}
	rc := ReplicaConfig{Settings: map[string]string{}, Line: n.Line}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return ReplicaConfig{}, fmt.Errorf("%s:%d: replica setting %q must be a single value", file, k.Line, k.Value)
		}
		switch k.Value {
		case "type":
			t, ok := canonicalType(v.Value)
			if !ok {
				return ReplicaConfig{}, fmt.Errorf("%s:%d: unknown replica type %q; use file, s3, gcs (gs), abs (azure), sftp or plugin", file, k.Line, v.Value)
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
				return ReplicaConfig{}, fmt.Errorf("%s:%d: %v", file, k.Line, err)
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

// ErrNoDB means the config has no entry for a database.
var ErrNoDB = errors.New("database not in config")

// DB returns the entry for the database at path.
func (c *Config) DB(path string) (DBConfig, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return DBConfig{}, err
	}
	for _, d := range c.DBs {
		if d.Path == abs {
			return d, nil
		}
	}
	return DBConfig{}, fmt.Errorf("%w: %s", ErrNoDB, abs)
}
