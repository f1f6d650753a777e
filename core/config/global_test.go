package config

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseGlobalAndDefaults(t *testing.T) {
	t.Setenv("KEYVAR", "APPKEY")
	c, err := Parse("c.yml", []byte(`addr: ""
log-level: debug
log-format: json
plugins:
  hashdir: {path: /usr/lib/hashdir, sha256: abcd}
defaults:
  sync-interval: 2s
  retention: 720h
  max-local-size: 512MiB
  compaction-interval: "off"
  compression: zstd
dbs:
  - path: /data/a.db
    replicas: [{type: file, path: /b}]
  - path: /data/b.db
    max-local-size: unlimited
    sync-interval: 250ms
    checkpoint-pages: 800
    compression: none
    encryption: {key-env: $KEYVAR}
    replicas:
      - type: hashdir
        path: /srv/h
  - dir: /data/tenants
    recursive: true
    replicas: [{type: file, path: /b/tenants}]
follow:
  - path: /replica/read.db
    url: file:///b
    interval: 5s
  - path: /replica/other.db
    replica: {type: s3, bucket: x}
    encryption: {key-file: /etc/k}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr == nil || *c.Addr != "" || c.LogLevel != slog.LevelDebug || c.LogFormat != "json" {
		t.Errorf("globals: addr %v, level %v, format %q", c.Addr, c.LogLevel, c.LogFormat)
	}
	a, b := c.DBs[0], c.DBs[1]
	if a.SyncInterval != 2*time.Second || a.Retention != 720*time.Hour || a.MaxLocalSize != 512<<20 || a.CompactionInterval != -1 || a.Compression != "zstd" {
		t.Errorf("a.db did not take the defaults: %+v", a.Settings)
	}
	if b.SyncInterval != 250*time.Millisecond || b.Retention != 720*time.Hour || b.CheckpointPages != 800 || b.MaxLocalSize != -1 || b.Compression != "none" || b.Encryption.KeyEnv != "APPKEY" {
		t.Errorf("b.db settings: %+v", b.Settings)
	}
	if b.Replicas[0].Encryption.KeyEnv != "APPKEY" || a.Replicas[0].Encryption != (Encryption{}) {
		t.Errorf("a database's encryption must reach its replicas (and only its own): %+v, %+v", b.Replicas[0].Encryption, a.Replicas[0].Encryption)
	}
	if c.Follows[1].Replica.Encryption.KeyFile != "/etc/k" {
		t.Errorf("follow entry's encryption = %+v", c.Follows[1].Replica.Encryption)
	}
	if r := b.Replicas[0]; r.Type != "plugin" || r.Plugin != "/usr/lib/hashdir" || r.SHA256 != "abcd" || r.Name != "hashdir" || r.Settings["path"] != "/srv/h" {
		t.Errorf("named plugin replica = %+v", r)
	}
	if len(c.Dirs) != 1 || c.Dirs[0].Pattern != "*.db" || !c.Dirs[0].Recursive {
		t.Fatalf("dirs = %+v", c.Dirs)
	}
	if len(c.Follows) != 2 || c.Follows[0].Interval != 5*time.Second || c.Follows[0].Replica.Settings["path"] != "/b" || c.Follows[1].Replica.Type != "s3" {
		t.Errorf("follows = %+v", c.Follows)
	}
	for _, tc := range []struct {
		path, prefix string
		ok           bool
	}{
		{"/data/tenants/x.db", "x.db", true},
		{"/data/tenants/eu/y.db", "eu/y.db", true},
		{"/data/tenants/x.db-wal", "", false},
		{"/data/other/x.db", "", false},
		{"/data/tenants", "", false},
	} {
		db, err := c.DB(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("DB(%s) = %v, want found %v", tc.path, err, tc.ok)
			continue
		}
		if tc.ok && (db.Replicas[0].Prefix != tc.prefix || db.Replicas[0].Settings["path"] != "/b/tenants") {
			t.Errorf("DB(%s) replica = %+v, want prefix %q", tc.path, db.Replicas[0], tc.prefix)
		}
	}
}

func TestParseGlobalErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"log-level: loud\n", "log-level"},
		{"log-format: xml\n", "log-format"},
		{"plugins:\n  s3: {path: /x}\n", "built-in"},
		{"plugins:\n  p: {sha256: x}\n", "no path"},
		{"defaults:\n  max-local-size: lots\n", "max-local-size"},
		{"defaults:\n  colour: red\n", "colour"},
		{"defaults:\n  compression: gzip\n", "compression \"gzip\": use lz4 (the default), zstd or none"},
		{"defaults:\n  sync-interval: 0s\n", "sync-interval must be positive"},
		{"dbs:\n  - path: /x.db\n    checkpoint-pages: -3\n    replicas: [{type: file}]\n", "checkpoint-pages"},
		{"dbs:\n  - path: /x.db\n    encryption: {key-file: /k, key-env: K}\n    replicas: [{type: file}]\n", "key-file and key-env"},
		{"dbs:\n  - path: /x.db\n    dir: /d\n    replicas: [{type: file}]\n", "not both"},
		{"dbs:\n  - path: /x.db\n    pattern: '*.db'\n    replicas: [{type: file}]\n", "only to dir"},
		{"dbs:\n  - dir: /d\n    pattern: '[x'\n    replicas: [{type: file}]\n", "pattern"},
		{"dbs:\n  - path: /x.db\n    replicas: [{type: file}]\n  - path: /x.db\n    replicas: [{type: file}]\n", "already listed at line 2"},
		{"dbs:\n  - path: /x.db\n    replicas: [{type: file}, {type: file}]\n", ""},
		{"dbs:\n  - path: /x.db\n    replicas: [{type: file, name: a}, {type: s3, name: a}]\n", "named \"a\""},
		{"follow:\n  - url: file:///b\n", "no path"},
		{"follow:\n  - path: /r.db\n", "no url or replica"},
		{"follow:\n  - path: /r.db\n    url: file:///b\n    replica: {type: file}\n", "both url and replica"},
		{"follow:\n  - path: /r.db\n    url: file:///b\n    interval: 0s\n", "interval"},
	} {
		_, err := Parse("c.yml", []byte(tc.yaml))
		if tc.want == "" {
			if err != nil {
				t.Errorf("Parse(%q) = %v, want no error", tc.yaml, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "c.yml") {
			t.Errorf("Parse(%q) = %v, want an error naming %q and the file", tc.yaml, err, tc.want)
		}
	}
}

func TestParseEmpty(t *testing.T) {
	c, err := Parse("c.yml", nil)
	if err != nil || len(c.DBs) != 0 {
		t.Fatalf("Parse(empty) = %+v, %v", c, err)
	}
}
