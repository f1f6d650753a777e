package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/internal/testenv"
)

// TestDaemonRebaseAfterLongOutage: S3 stays unreachable while far more
// is committed than max-local-size allows. The daemon marks the S3 replica
// for a re-base (health and metrics say so) and drops what only it lacked;
// the file replica is unaffected. When S3 returns it receives a fresh
// snapshot: both replicas restore the latest state exactly, and a time
// inside the S3 replica's gap is refused by it, not answered wrongly,
// while the file replica restores it.
func TestDaemonRebaseAfterLongOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("long: waits out an outage")
	}
	s3 := testenv.Backends(t)["s3"]
	if s3.Name == "" {
		t.Skip("no S3 test server (scripts/test-servers.sh)")
	}
	u, err := url.Parse(s3.Settings["endpoint"])
	if err != nil {
		t.Fatal(err)
	}
	s3Proxy := newProxy(t, u.Host)
	if s3Proxy == nil {
		if os.Getenv("CI") != "" {
			t.Fatal("TEST_TOXIPROXY_ADDR is not set: CI must run the test servers (scripts/test-servers.sh)")
		}
		t.Skip("no toxiproxy (scripts/test-servers.sh)")
	}
	repRoot := t.TempDir()
	rig := startDaemon(t, 1, func(i int) string {
		return fmt.Sprintf("      - name: file\n        type: file\n        path: %s\n", filepath.Join(repRoot, fmt.Sprint(i))) +
			fmt.Sprintf("      - name: s3\n        type: s3\n        endpoint: http://%s\n        bucket: %s\n        path: %s/%d\n        region: %s\n        access-key-id: %s\n        secret-access-key: %s\n",
				s3Proxy.listen, s3.Settings["bucket"], s3.Settings["path"], i, s3.Settings["region"], s3.Settings["access-key-id"], s3.Settings["secret-access-key"])
	}, "  max-local-size: 256KiB\n")
	rig.startWriters(t)
	time.Sleep(500 * time.Millisecond)
	rig.waitHealth(t, 200, "ok", 30*time.Second)

	s3Proxy.setEnabled(t, false)
	outage := time.Now()
	body := rig.waitHealth(t, 503, "replica s3 of "+rig.dbs[0]+": re-basing for", 90*time.Second)
	t.Logf("during the outage: %s", body)
	if v := rig.metric(t, "replicator_replica_rebasing", `replica="s3"`); v != 1 {
		t.Errorf("replicator_replica_rebasing{replica=s3} = %v during the re-base", v)
	}
	if v := rig.metric(t, "replicator_replica_rebasing", `replica="file"`); v != 0 {
		t.Errorf("replicator_replica_rebasing{replica=file} = %v", v)
	}
	if v := rig.metric(t, "replicator_replica_rebases_total", `replica="s3"`); v < 1 {
		t.Errorf("replicator_replica_rebases_total{replica=s3} = %v", v)
	}
	if strings.Contains(body, "replica file of") {
		t.Errorf("the file replica is reported during the S3 outage: %s", body)
	}
	// A moment well inside the gap the S3 replica will have.
	inGap := outage.Add(time.Since(outage) / 2)
	time.Sleep(time.Second)
	s3Proxy.setEnabled(t, true)
	rig.waitHealth(t, 200, "ok", 90*time.Second)
	if v := rig.metric(t, "replicator_replica_rebasing", `replica="s3"`); v != 0 {
		t.Errorf("replicator_replica_rebasing{replica=s3} = %v after the re-base", v)
	}
	rig.stop(t)
	rig.checkRestores(t, []string{"file", "s3"}, map[string]bool{"s3": true})

	ts := inGap.UTC().Format(time.RFC3339Nano)
	out := filepath.Join(t.TempDir(), "gap.db")
	code, _, stderr := runCLI(t, "restore", "-config", rig.cfgPath, "-replica", "s3", "-o", out, "-timestamp", ts, rig.dbs[0])
	if code != 1 || !strings.Contains(stderr, "gap") {
		t.Errorf("restore from s3 at %s, inside its gap: exit %d, %q; want exit 1 naming the gap", ts, code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused restore left %s", out)
	}
	out = filepath.Join(t.TempDir(), "whole.db")
	if code, _, stderr := runCLI(t, "restore", "-config", rig.cfgPath, "-replica", "file", "-o", out, "-timestamp", ts, rig.dbs[0]); code != 0 {
		t.Errorf("restore from file at %s: exit %d: %s", ts, code, stderr)
	} else {
		rowsPrefix(t, out)
	}
}
