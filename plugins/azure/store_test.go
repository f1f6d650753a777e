package azure

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// TestBlobNames checks that awkward keys reach the service as exactly the
// blob name path/key (the SDK escapes the name into the URL once; a
// double or missing escape would still round-trip through this backend
// but name the blob wrongly for every other tool), and come back intact.
func TestBlobNames(t *testing.T) {
	srv := testServer(t)
	settings := isolated(t, srv)
	st := plugintest.Open(t, pluginName, settings)
	ctx := context.Background()
	keys := []string{
		"space and  two/a b",
		"query?x=1&y=2",
		"hash#frag",
		"percent%2F%41%",
		"plus+equals=semi;colon,comma'quote",
		"tilde~bang!star*(paren)@at$dollar",
		"unicode/héllo/日本語/ファイル",
		"emoji/\U0001F642\U0001F680",
		"combining/e\u0301",
		"brackets[]{}^`|\"<>",
	}
	for _, k := range keys {
		if _, err := st.Put(ctx, k, strings.NewReader(k), sdk.PutOptions{}); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	// What the service holds, listed with the SDK directly.
	cred, _ := container.NewSharedKeyCredential(srv.account, srv.key)
	cc, err := container.NewClientWithSharedKeyCredential(srv.endpoint+"/"+settings["container"], cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	pager := cc.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list with the SDK: %v", err)
		}
		for _, item := range page.Segment.BlobItems {
			names = append(names, *item.Name)
		}
	}
	var want []string
	for _, k := range keys {
		want = append(want, settings["path"]+"/"+k)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("blob names on the service:\n%q\nwant\n%q", names, want)
	}
	for _, k := range keys {
		rc, err := st.Get(ctx, k, 0, -1)
		if err != nil {
			t.Errorf("Get(%q): %v", k, err)
			continue
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(data) != k {
			t.Errorf("Get(%q) read %q, %v", k, data, err)
		}
	}
}

// failAfter serves n bytes of data, then fails with err.
type failAfter struct {
	data []byte
	n    int
	err  error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	m := copy(p[:min(len(p), f.n)], f.data)
	f.data = f.data[m:]
	f.n -= m
	return m, nil
}

// TestMultiBlockPut covers puts of several blocks, which the conformance
// suite's failure cases (smaller than a block) do not reach: a reader
// failing after blocks were staged, and conditions on the block list
// commit. Nothing of a failed put may become visible, and the old object
// must stay whole. It runs through the plugin process and in-process:
// over gRPC a reader failure also cancels the put's context, which would
// hide a put that commits on a reader error.
func TestMultiBlockPut(t *testing.T) {
	srv := testServer(t)
	t.Run("Plugin", func(t *testing.T) { testMultiBlockPut(t, plugintest.Open(t, pluginName, isolated(t, srv))) })
	t.Run("InProcess", func(t *testing.T) {
		st, err := Open(context.Background(), isolated(t, srv))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		testMultiBlockPut(t, st)
	})
}

func testMultiBlockPut(t *testing.T, st sdk.Storage) {
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), (2*blockSize+12345)/16)
	old := []byte("the old object")
	info, err := st.Put(ctx, "obj", bytes.NewReader(old), sdk.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantOld := func(what string) {
		t.Helper()
		got := readAll(t, st, "obj")
		if !bytes.Equal(got, old) {
			t.Errorf("after %s the object holds %d bytes, want the old %d", what, len(got), len(old))
		}
		keys := listKeys(t, st)
		if !slices.Equal(keys, []string{"obj"}) {
			t.Errorf("after %s List returns %q, want only obj", what, keys)
		}
	}

	injected := errors.New("injected failure")
	_, err = st.Put(ctx, "obj", &failAfter{data: big, n: blockSize + blockSize/2, err: injected}, sdk.PutOptions{})
	if err == nil {
		t.Fatal("Put whose reader failed after 1.5 blocks succeeded")
	}
	wantOld("a put that failed after staging a block")
	_, err = st.Put(ctx, "new", &failAfter{data: big, n: 2 * blockSize, err: injected}, sdk.PutOptions{})
	if err == nil {
		t.Fatal("Put whose reader failed after 2 blocks succeeded")
	}
	if _, err := st.Stat(ctx, "new"); sdk.CodeOf(err) != sdk.NotFound {
		t.Errorf("Stat of a key whose only put failed: %v, want NotFound", err)
	}
	wantOld("a failed put of a new key")

	cctx, cancel := context.WithCancel(ctx)
	r := &failAfter{data: big, n: len(big), err: io.EOF}
	var once sync.Once
	_, err = st.Put(cctx, "obj", readFunc(func(p []byte) (int, error) {
		if len(r.data) < len(big)-blockSize-100 {
			once.Do(cancel)
		}
		return r.Read(p)
	}), sdk.PutOptions{})
	cancel()
	if err == nil {
		t.Fatal("Put cancelled after a block succeeded")
	}
	wantOld("a cancelled put")

	_, err = st.Put(ctx, "obj", bytes.NewReader(big), sdk.PutOptions{IfAbsent: true})
	if sdk.CodeOf(err) != sdk.AlreadyExists {
		t.Errorf("multi-block Put(IfAbsent) of an existing key: %v, want AlreadyExists", err)
	}
	_, err = st.Put(ctx, "obj", bytes.NewReader(big), sdk.PutOptions{IfMatch: "0x8D0000000000000"})
	if sdk.CodeOf(err) != sdk.PreconditionFailed {
		t.Errorf("multi-block Put(IfMatch stale): %v, want PreconditionFailed", err)
	}
	wantOld("refused conditional puts")

	got, err := st.Put(ctx, "obj", bytes.NewReader(big), sdk.PutOptions{IfMatch: info.ETag})
	if err != nil {
		t.Fatalf("multi-block Put(IfMatch current): %v", err)
	}
	if got.Size != int64(len(big)) || got.ETag == info.ETag {
		t.Errorf("Put returned size %d, etag %q; want %d and a new etag", got.Size, got.ETag, len(big))
	}
	if data := readAll(t, st, "obj"); !bytes.Equal(data, big) {
		t.Errorf("after a multi-block put the object holds %d bytes, want %d", len(data), len(big))
	}
	if _, err := st.Put(ctx, "new2", bytes.NewReader(big), sdk.PutOptions{IfAbsent: true}); err != nil {
		t.Errorf("multi-block Put(IfAbsent) of a new key: %v", err)
	}
}

// TestMaxObjectSize checks that a put over the declared maximum fails
// before anything is committed (in-process, to lower the maximum).
func TestMaxObjectSize(t *testing.T) {
	srv := testServer(t)
	ctx := context.Background()
	st, err := Open(ctx, isolated(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*Store)
	s.maxSize = blockSize + 10
	if got := s.Capabilities().MaxObjectSize; got != s.maxSize {
		t.Fatalf("Capabilities().MaxObjectSize = %d, want %d", got, s.maxSize)
	}
	data := make([]byte, s.maxSize+1)
	if _, err := st.Put(ctx, "max", bytes.NewReader(data[:s.maxSize]), sdk.PutOptions{}); err != nil {
		t.Fatalf("Put of the maximum size: %v", err)
	}
	_, err = st.Put(ctx, "over", bytes.NewReader(data), sdk.PutOptions{})
	if sdk.CodeOf(err) != sdk.InvalidArgument || !strings.Contains(err.Error(), "maximum") {
		t.Errorf("Put over the maximum: %v, want InvalidArgument", err)
	}
	if keys := listKeys(t, st); !slices.Equal(keys, []string{"max"}) {
		t.Errorf("List after the refused put: %q, want only max", keys)
	}
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

func readAll(t *testing.T, st sdk.Storage, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return data
}

func listKeys(t *testing.T, st sdk.Storage) []string {
	t.Helper()
	var keys []string
	if err := st.List(context.Background(), "", "", func(i sdk.ObjectInfo) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	return keys
}

// TestListPages lists across many small pages, with and without the
// service's startFrom, and checks every prefix and startAfter against the
// byte order of the keys, including ones whose UTF-16 order differs.
func TestListPages(t *testing.T) {
	srv := testServer(t)
	ctx := context.Background()
	st, err := Open(ctx, isolated(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*Store)
	keys := []string{"a/1", "a/2", "a/\uFF5E", "a/\U0001F642", "a/\U0001F642/x", "a/\uFF5E/y", "a-b", "a0", "b", "b/\U0001F680", "b/\uFFE0", "c"}
	for _, k := range keys {
		if _, err := st.Put(ctx, k, strings.NewReader(k), sdk.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(keys)
	s.pageSize = 2
	for _, mode := range []string{"startFrom", "clientOnly"} {
		s.noStartFrom.Store(mode == "clientOnly")
		for _, prefix := range []string{"", "a", "a/", "b/", "z"} {
			for _, after := range append([]string{"", "a/\uFF5E", "a/\U0001F642", "a/1", "a/\uE000", "b/\uE000", "a-", "0", "zz"}, keys...) {
				var want []string
				for _, k := range keys {
					if strings.HasPrefix(k, prefix) && k > after {
						want = append(want, k)
					}
				}
				var got []string
				err := st.List(ctx, prefix, after, func(i sdk.ObjectInfo) error { got = append(got, i.Key); return nil })
				if err != nil {
					t.Fatalf("%s: List(%q, %q): %v", mode, prefix, after, err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: List(%q, %q) = %q, want %q", mode, prefix, after, got, want)
				}
			}
		}
	}
	if s.noStartFrom.Load() != true {
		t.Error("mode flag lost")
	}
}

// TestListWithoutStartFrom checks the fallback for a service that refuses
// the startFrom parameter: a proxy in front of the server answers such
// listings with 400, and List must still return the right keys, then stop
// sending the parameter.
func TestListWithoutStartFrom(t *testing.T) {
	srv := testServer(t)
	target, err := url.Parse(srv.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("startFrom") {
			refused.Add(1)
			w.Header().Set("x-ms-error-code", "UnsupportedQueryParameter")
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer ts.Close()
	settings := isolated(t, srv)
	settings["endpoint"] = ts.URL + target.Path
	ctx := context.Background()
	st, err := Open(ctx, settings)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, k := range []string{"k/1", "k/2", "k/3"} {
		if _, err := st.Put(ctx, k, strings.NewReader(k), sdk.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		var got []string
		if err := st.List(ctx, "k/", "k/1", func(i sdk.ObjectInfo) error { got = append(got, i.Key); return nil }); err != nil {
			t.Fatalf("List: %v", err)
		}
		if !slices.Equal(got, []string{"k/2", "k/3"}) {
			t.Errorf("List = %q, want k/2 and k/3", got)
		}
	}
	if n := refused.Load(); n != 1 {
		t.Errorf("the service refused startFrom %d times, want once (then List stops sending it)", n)
	}
}
