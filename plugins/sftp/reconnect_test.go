package sftp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// TestReconnect drops the connection under an open store: the next call
// dials again and succeeds.
func TestReconnect(t *testing.T) {
	srv := testServer(t)
	st, err := Open(t.Context(), srv.settings(srv.freshDir(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*Store)
	ctx := t.Context()
	if _, err := s.Put(ctx, "a/obj", strings.NewReader("before"), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	first := s.pool.current()
	s.pool.drop()
	if first.alive() {
		t.Fatal("connection still alive after drop")
	}
	info, err := s.Stat(ctx, "a/obj")
	if err != nil || info.Size != 6 {
		t.Fatalf("Stat after a dropped connection: %+v, %v; want it to reconnect", info, err)
	}
	if now := s.pool.current(); now == first || !now.alive() {
		t.Error("no new connection after the drop")
	}
	if _, err := s.Put(ctx, "a/obj", strings.NewReader("after"), sdk.PutOptions{}); err != nil {
		t.Fatalf("Put after reconnecting: %v", err)
	}
}

// TestReconnectMidRead drops the connection while a reader is open: its
// reads fail as Unavailable, and the next Get reconnects.
func TestReconnectMidRead(t *testing.T) {
	srv := testServer(t)
	st, err := Open(t.Context(), srv.settings(srv.freshDir(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*Store)
	ctx := t.Context()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	if _, err := s.Put(ctx, "big", bytes.NewReader(data), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "big", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	s.pool.drop()
	_, err = io.ReadAll(rc)
	if sdk.CodeOf(err) != sdk.Unavailable {
		t.Errorf("read after the connection dropped: %v (code %v), want Unavailable", err, sdk.CodeOf(err))
	}
	rc2, err := s.Get(ctx, "big", 100, 16)
	if err != nil {
		t.Fatalf("Get after the connection dropped: %v", err)
	}
	defer rc2.Close()
	if got, err := io.ReadAll(rc2); err != nil || string(got) != string(data[100:116]) {
		t.Errorf("Get after reconnecting: %q, %v", got, err)
	}
}

// TestReconnectThroughPlugin cuts the network between the plugin process
// and the server with toxiproxy: the call that meets the cut fails as
// Unavailable (or succeeds on a new connection), and the next one succeeds.
func TestReconnectThroughPlugin(t *testing.T) {
	srv := testServer(t)
	proxy := newToxiproxy(t, srv.host+":"+srv.port)
	settings := srv.settings(srv.freshDir(t))
	host, port, _ := strings.Cut(proxy.listen, ":")
	settings["host"], settings["port"] = host, port
	// The proxy's address is not in known_hosts: pin the key instead.
	delete(settings, "known-hosts")
	settings["host-key-fingerprint"] = ssh.FingerprintSHA256(srv.hostKey(t))
	st := plugintest.Open(t, "sftp", settings)
	ctx := t.Context()
	if _, err := st.Put(ctx, "obj", strings.NewReader("data"), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// While the network is down, calls fail as Unavailable.
	proxy.setEnabled(t, false) // closes every connection through it
	if _, err := st.Stat(ctx, "obj"); sdk.CodeOf(err) != sdk.Unavailable {
		t.Errorf("Stat while the server is unreachable: %v (code %v), want Unavailable", err, sdk.CodeOf(err))
	}
	proxy.setEnabled(t, true)
	if _, err := st.Stat(ctx, "obj"); err != nil {
		t.Fatalf("Stat once the server is reachable again: %v", err)
	}
	for round := range 2 {
		proxy.setEnabled(t, false)
		proxy.setEnabled(t, true)
		var errs []error
		for range 3 {
			_, err := st.Stat(ctx, "obj")
			if err == nil {
				break
			}
			errs = append(errs, err)
			if sdk.CodeOf(err) != sdk.Unavailable {
				t.Errorf("round %d: Stat after the cut: %v (code %v), want Unavailable", round, err, sdk.CodeOf(err))
			}
		}
		if len(errs) > 1 {
			t.Fatalf("round %d: Stat failed %d times after the cut, want at most once: %v", round, len(errs), errs)
		}
		t.Logf("round %d: failed calls before reconnecting: %v", round, errs)
	}
}

// toxiproxy is one proxy of the toxiproxy server from TEST_TOXIPROXY_ADDR.
type toxiproxy struct {
	api, name, listen string
}

func newToxiproxy(t *testing.T, upstream string) *toxiproxy {
	t.Helper()
	api := os.Getenv("TEST_TOXIPROXY_ADDR")
	if api == "" {
		const msg = "TEST_TOXIPROXY_ADDR is not set: run under scripts/test-servers.sh run -- go test ./plugins/sftp/"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	p := &toxiproxy{api: "http://" + api, name: fmt.Sprintf("sftp-%d", os.Getpid())}
	var created struct{ Listen string }
	p.call(t, "POST", "/proxies", map[string]any{"name": p.name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true}, &created)
	t.Cleanup(func() { p.call(t, "DELETE", "/proxies/"+p.name, nil, nil) })
	p.listen = created.Listen
	return p
}

func (p *toxiproxy) setEnabled(t *testing.T, on bool) {
	p.call(t, "POST", "/proxies/"+p.name, map[string]any{"enabled": on}, nil)
}

func (p *toxiproxy) call(t *testing.T, method, path string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, p.api+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("toxiproxy %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("toxiproxy %s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("toxiproxy %s %s: %v", method, path, err)
		}
	}
}

func (p *pool) current() *sshConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn
}
