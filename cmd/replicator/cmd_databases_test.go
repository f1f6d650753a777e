package main

import (
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replicate"
)

func TestDatabasesCommand(t *testing.T) {
	now := time.Now()
	sts := []replicate.Status{{Path: "/srv/app.db", Generation: "0000000000000002", TxID: 42, SyncInterval: time.Second, Opened: now.Add(-time.Minute),
		Replicas: []replicate.ReplicaStatus{
			{Name: "s3", Generation: "0000000000000002", TxID: 42, LastSync: now.Add(-3 * time.Second)},
			{Name: "sftp-backup", Generation: "0000000000000002", TxID: 40, LastSync: now.Add(-30 * time.Second), Lag: 30 * time.Second},
		}}}
	srv := httptest.NewServer(newHTTPHandler(nil, func() []replicate.Status { return sts }, time.Now))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	code, stdout, stderr := runCLI(t, "databases", "-addr", addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 rows:\n%s", stdout)
	}
	col := strings.Index(lines[0], "TXID")
	for _, l := range lines {
		if len(l) <= col || l[col-1] != ' ' {
			t.Errorf("TXID column not aligned:\n%s", stdout)
		}
	}
	for _, f := range [][]string{
		{"DB", "REPLICA", "GENERATION", "TXID", "LAG", "LAST", "SYNC", "STATUS"},
		{"/srv/app.db", "(captured)", "0000000000000002", "42", "-", "-", "-"},
		{"/srv/app.db", "s3", "0000000000000002", "42", "0s", "3s", "ago", "ok"},
		{"/srv/app.db", "sftp-backup", "0000000000000002", "40", "30s", "30s", "ago", "degraded:", "no", "successful", "sync", "for", "30s", "(sync-interval", "1s)"},
	} {
		var found bool
		for _, l := range lines {
			if strings.Join(strings.Fields(l), " ") == strings.Join(f, " ") {
				found = true
			}
		}
		if !found {
			t.Errorf("no row %q in:\n%s", f, stdout)
		}
	}

	code, stdout, stderr = runCLI(t, "databases", "-addr", addr, "-json")
	var dbs []dbStatusJSON
	if err := json.Unmarshal([]byte(stdout), &dbs); code != 0 || err != nil {
		t.Fatalf("-json: exit %d, %v: %s %s", code, err, stdout, stderr)
	}
	if len(dbs) != 1 || dbs[0].TxID != 42 || len(dbs[0].Replicas) != 2 || dbs[0].Replicas[1].LagSeconds != 30 {
		t.Errorf("-json: %s", stdout)
	}

	// Nobody listening: a clear error, exit 1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().String()
	ln.Close()
	code, _, stderr = runCLI(t, "databases", "-addr", free)
	if code != 1 || !strings.Contains(stderr, "no replicator daemon listening on "+free) {
		t.Errorf("no daemon: exit %d, %q", code, stderr)
	}
	if code, _, _ := runCLI(t, "databases", "extra"); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
}
