package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		typ  string
		want map[string]string
		err  string
	}{
		{url: "file:///var/backups/app", typ: "file", want: map[string]string{"path": "/var/backups/app"}},
		{url: "s3://bucket/a/b?endpoint=http://127.0.0.1:9000&region=x", typ: "s3",
			want: map[string]string{"bucket": "bucket", "path": "a/b", "endpoint": "http://127.0.0.1:9000", "region": "x"}},
		{url: "gs://bucket", typ: "gcs", want: map[string]string{"bucket": "bucket"}},
		{url: "abs://acct@cont/p", typ: "abs", want: map[string]string{"account-name": "acct", "container": "cont", "path": "p"}},
		{url: "sftp://me:pw@host:2222/srv/x", typ: "sftp",
			want: map[string]string{"host": "host", "port": "2222", "user": "me", "password": "pw", "path": "/srv/x"}},
		{url: "ftp://x", err: "unknown scheme"},
		{url: "s3:///path", err: "no bucket"},
		{url: "abs://container/path", err: "abs://ACCOUNT@CONTAINER/PATH"},
		{url: "sftp://host/path", err: "sftp://USER@HOST"},
		{url: "file://host/dir", err: "no host"},
		{url: "s3://b/p?region=a&region=b", err: "given 2 times"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			rc, err := ParseURL(tc.url)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseURL(%q) = %v, want an error containing %q", tc.url, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rc.Type != tc.typ || len(rc.Settings) != len(tc.want) {
				t.Fatalf("ParseURL(%q) = %s %v", tc.url, rc.Type, rc.Settings)
			}
			for k, v := range tc.want {
				if rc.Settings[k] != v {
					t.Errorf("setting %s = %q, want %q", k, rc.Settings[k], v)
				}
			}
		})
	}
}

func TestRedact(t *testing.T) {
	got := Redact("sftp://me:hunter2@host/p?secret-access-key=abc&region=x")
	if strings.Contains(got, "hunter2") || strings.Contains(got, "abc") || !strings.Contains(got, "region=x") {
		t.Fatalf("Redact = %q", got)
	}
	rc := ReplicaConfig{Type: "s3", Settings: map[string]string{"secret-access-key": "abc", "account-key": "k", "bucket": "b"}}
	if s := rc.String(); strings.Contains(s, "abc") || strings.Contains(s, "=k") || !strings.Contains(s, "bucket=b") {
		t.Fatalf("String = %q", s)
	}
}

func TestParseConfig(t *testing.T) {
	t.Setenv("SECRET", "s3cr3t")
	c, err := Parse("c.yml", []byte(`dbs:
  - path: /data/app.db
    sync-interval: 500ms
    retention: 24h
    replicas:
      - type: gs
        bucket: b
      - name: key
        type: s3
        bucket: b2
        secret-access-key: ${SECRET}
      - url: abs://a@c/p
`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.DB("/data/app.db")
	if err != nil {
		t.Fatal(err)
	}
	if d.SyncInterval.String() != "500ms" || d.Retention.String() != "24h0m0s" || len(d.Replicas) != 3 {
		t.Fatalf("parsed %+v", d)
	}
	if r := d.Replicas[0]; r.Type != "gcs" || r.Name != "gcs1" || r.Line != 6 {
		t.Errorf("replica 0 = %+v", r)
	}
	if r := d.Replicas[1]; r.Name != "key" || r.Settings["secret-access-key"] != "s3cr3t" {
		t.Errorf("replica 1 = %+v", r)
	}
	if r := d.Replicas[2]; r.Type != "abs" || r.Settings["container"] != "c" {
		t.Errorf("replica 2 = %+v", r)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"dbs:\n  - path: /x.db\n    replicas:\n      - type: file\n    colour: blue\n", "colour"},
		{"dbz: []\n", "dbz"},
		{"dbs:\n  - replicas:\n      - type: file\n", "no path"},
		{"dbs:\n  - path: /x.db\n    replicas:\n      - type: plugin\n", "plugin: PATH"},
		{"dbs:\n  - path: /x.db\n    replicas:\n      - type: s3\n        sha256: abc\n", "only to type plugin"},
		{"dbs:\n  - path: /x.db\n    replicas:\n      - bucket: x\n", "no type"},
		{"dbs:\n  - path: /x.db\n    snapshot-interval: -1h\n    replicas:\n      - type: file\n", "snapshot-interval"},
	} {
		_, err := Parse("c.yml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "c.yml") {
			t.Errorf("Parse(%q) = %v, want an error naming %q and the file", tc.yaml, err, tc.want)
		}
	}
}

// TestExampleConfigs keeps the shipped examples valid.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("../../examples/config/*.yml")
	if err != nil || len(files) < 7 {
		t.Fatalf("found %d example configs (%v)", len(files), err)
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
