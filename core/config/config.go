package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the configuration file.
type Config struct {
	// Addr serves /metrics, /healthz and /databases; nil means the
	// command-line default, an empty string disables the listener.
	Addr *string
	// LogLevel and LogFormat ("text" or "json") configure the daemon's log.
	LogLevel  slog.Level
	LogFormat string
	// Plugins are third-party plugins that replicas name by type.
	Plugins map[string]PluginConfig
	DBs     []DBConfig
	Dirs    []DirConfig
	Follows []FollowConfig
}

// PluginConfig is a third-party plugin executable, pinned by its digest.
type PluginConfig struct {
	Path   string
	SHA256 string
}

// Settings are the per-database settings; a zero field takes the value of
// the file's defaults section, then the command line's.
type Settings struct {
	SyncInterval     time.Duration
	SnapshotInterval time.Duration
	Retention        time.Duration
	// CompactionInterval is the age at which level-0 segments are merged
	// into level 1 (level 2 at ten times it); negative disables compaction.
	CompactionInterval time.Duration
	// CheckpointPages is the WAL size, in pages, past which the daemon
	// checkpoints.
	CheckpointPages int64
	// MaxLocalSize bounds the local state kept for replicas that cannot
	// be reached, in bytes.
	MaxLocalSize int64
	// Compression is "lz4", "zstd" or "none"; empty means the default,
	// lz4 (segment.ParseCompression).
	Compression string
	Encryption  Encryption
}

// Encryption names where a database's encryption key is read from; both
// empty means the replicas are not encrypted.
type Encryption struct {
	KeyFile string
	KeyEnv  string
}

// DBConfig is one database to replicate.
type DBConfig struct {
	Path string
	Settings
	Replicas []ReplicaConfig
	Line     int
}

// DirConfig replicates every SQLite database in Dir whose name matches
// Pattern, each to the replicas under a prefix named after its path
// relative to Dir.
type DirConfig struct {
	Dir       string
	Pattern   string
	Recursive bool
	Settings
	Replicas []ReplicaConfig
	Line     int
}

// FollowConfig keeps the local database Path a read-only copy of Replica.
type FollowConfig struct {
	Path     string
	Replica  ReplicaConfig
	Interval time.Duration
	Line     int
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
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, errEOF) {
		return nil, fmt.Errorf("%s: %v", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	p := parser{file: name, root: &root}
	return p.config(&fc)
}

type parser struct {
	file    string
	root    *yaml.Node
	plugins map[string]PluginConfig
}

func (p *parser) at(line int) string { return fmt.Sprintf("%s:%d", p.file, line) }

func (p *parser) config(fc *fileConfig) (*Config, error) {
	c := &Config{Addr: fc.Addr, LogFormat: "text", Plugins: map[string]PluginConfig{}}
	if fc.LogLevel != "" {
		if err := c.LogLevel.UnmarshalText([]byte(fc.LogLevel)); err != nil {
			return nil, fmt.Errorf("%s: log-level %q: use debug, info, warn or error", p.at(p.line("log-level")), fc.LogLevel)
		}
	}
	switch fc.LogFormat {
	case "", "text":
	case "json":
		c.LogFormat = "json"
	default:
		return nil, fmt.Errorf("%s: log-format %q: use text or json", p.at(p.line("log-format")), fc.LogFormat)
	}
	for n, pc := range fc.Plugins {
		where := p.at(p.line("plugins"))
		if _, builtin := canonicalType(n); builtin {
			return nil, fmt.Errorf("%s: plugin name %q is a built-in type; choose another name", where, n)
		}
		if pc.Path == "" {
			return nil, fmt.Errorf("%s: plugin %q has no path", where, n)
		}
		c.Plugins[n] = PluginConfig(pc)
	}
	p.plugins = c.Plugins
	defaults, err := p.settings(p.line("defaults"), fc.Defaults, Settings{})
	if err != nil {
		return nil, err
	}
	seen := map[string]int{}
	for i, fd := range fc.DBs {
		line := p.entryLine("dbs", i)
		where := p.at(line)
		var err error
		switch {
		case fd.Path != "" && fd.Dir != "":
			return nil, fmt.Errorf("%s: an entry has either path (one database) or dir (every database in a directory), not both", where)
		case fd.Path == "" && fd.Dir == "":
			return nil, fmt.Errorf("%s: database entry has no path (or dir)", where)
		case fd.Dir == "" && (fd.Pattern != "" || fd.Recursive):
			return nil, fmt.Errorf("%s: pattern and recursive apply only to dir entries", where)
		}
		s, err := p.settings(line, fd.fileSettings, defaults)
		if err != nil {
			return nil, err
		}
		reps, err := p.replicas(where, fd.Replicas)
		if err != nil {
			return nil, err
		}
		for i := range reps {
			reps[i].Encryption = s.Encryption
		}
		if fd.Dir != "" {
			d := DirConfig{Pattern: fd.Pattern, Recursive: fd.Recursive, Settings: s, Replicas: reps, Line: line}
			if d.Dir, err = filepath.Abs(fd.Dir); err != nil {
				return nil, fmt.Errorf("%s: dir %q: %v", where, fd.Dir, err)
			}
			if d.Pattern == "" {
				d.Pattern = "*.db"
			}
			if _, err := filepath.Match(d.Pattern, ""); err != nil {
				return nil, fmt.Errorf("%s: pattern %q: %v", where, d.Pattern, err)
			}
			c.Dirs = append(c.Dirs, d)
			continue
		}
		abs, err := filepath.Abs(fd.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: path %q: %v", where, fd.Path, err)
		}
		if prev, dup := seen[abs]; dup {
			return nil, fmt.Errorf("%s: database %s is already listed at line %d", where, abs, prev)
		}
		seen[abs] = line
		c.DBs = append(c.DBs, DBConfig{Path: abs, Settings: s, Replicas: reps, Line: line})
	}
	for i, ff := range fc.Follow {
		f, err := p.follow(p.entryLine("follow", i), ff)
		if err != nil {
			return nil, err
		}
		c.Follows = append(c.Follows, f)
	}
	return c, nil
}

func (p *parser) replicas(where string, nodes []yaml.Node) ([]ReplicaConfig, error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%s: database has no replicas", where)
	}
	var out []ReplicaConfig
	names := map[string]bool{}
	for j := range nodes {
		rc, err := p.replica(&nodes[j])
		if err != nil {
			return nil, err
		}
		if rc.Name == "" {
			rc.Name = rc.Type
			if len(nodes) > 1 {
				rc.Name = fmt.Sprintf("%s%d", rc.Type, j+1)
			}
		}
		if names[rc.Name] {
			return nil, fmt.Errorf("%s: two replicas are named %q; give each a distinct name", p.at(nodes[j].Line), rc.Name)
		}
		names[rc.Name] = true
		out = append(out, rc)
	}
	return out, nil
}

func (p *parser) follow(line int, ff fileFollow) (FollowConfig, error) {
	where := p.at(line)
	f := FollowConfig{Line: line}
	if ff.Path == "" {
		return f, fmt.Errorf("%s: follow entry has no path (the local read-only database)", where)
	}
	var err error
	if f.Path, err = filepath.Abs(ff.Path); err != nil {
		return f, fmt.Errorf("%s: path %q: %v", where, ff.Path, err)
	}
	switch {
	case ff.URL != "" && ff.Replica.Kind != 0:
		return f, fmt.Errorf("%s: follow entry has both url and replica; give one", where)
	case ff.URL != "":
		if f.Replica, err = ParseURL(ff.URL); err != nil {
			return f, fmt.Errorf("%s: %v", where, err)
		}
	case ff.Replica.Kind != 0:
		if f.Replica, err = p.replica(&ff.Replica); err != nil {
			return f, err
		}
		if f.Replica.Name == "" {
			f.Replica.Name = f.Replica.Type
		}
	default:
		return f, fmt.Errorf("%s: follow entry has no url or replica to follow", where)
	}
	if e := ff.Encryption; e.KeyFile != "" || e.KeyEnv != "" {
		if e.KeyFile != "" && e.KeyEnv != "" {
			return f, fmt.Errorf("%s: encryption has both key-file and key-env; give one", where)
		}
		f.Replica.Encryption = Encryption(e)
	}
	if ff.Interval != "" {
		if f.Interval, err = parseDuration(ff.Interval); err != nil || f.Interval == 0 {
			return f, fmt.Errorf("%s: interval %q is not a positive duration like 1s or 30s", where, ff.Interval)
		}
	}
	return f, nil
}

// line is the line of a top-level key, or 0.
func (p *parser) line(key string) int {
	if n := p.top(key); n != nil {
		return n.Line
	}
	return 0
}

// entryLine is the line of the i-th entry of a top-level sequence.
func (p *parser) entryLine(key string, i int) int {
	if n := p.top(key); n != nil && i < len(n.Content) {
		return n.Content[i].Line
	}
	return 0
}

func (p *parser) top(key string) *yaml.Node {
	if p.root.Kind != yaml.DocumentNode || len(p.root.Content) == 0 {
		return nil
	}
	m := p.root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// ErrNoDB means the config has no entry for a database.
var ErrNoDB = errors.New("database not in config")

// DB returns the entry for the database at path: a dbs entry, or a
// database under a dir entry (whether or not it exists yet), whose
// replicas then carry the database's prefix.
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
	for _, d := range c.Dirs {
		if db, ok := d.Match(abs); ok {
			return db, nil
		}
	}
	return DBConfig{}, fmt.Errorf("%w: %s", ErrNoDB, abs)
}
