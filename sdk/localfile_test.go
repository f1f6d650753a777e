package sdk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	storagev1 "github.com/sqlitereplicator/replicator/sdk/proto/storage/v1"
)

// The tests of local reads run the real protocol v1 server and client over
// an in-memory gRPC connection. A tap on the server's Get streams records
// what actually went over the wire, so each test can tell a local read from
// a streamed one instead of trusting the bytes alone.

// tap records the Get traffic of a test server.
type tap struct {
	mu         sync.Mutex
	requests   []*storagev1.GetRequest
	paths      []string
	dataMsgs   int
	dataBytes  int
	beforePath func(*storagev1.GetResponse) // runs before a local path is sent
}

func (tp *tap) interceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &tappedStream{ServerStream: ss, tap: tp})
}

func (tp *tap) snapshot() (reqs []*storagev1.GetRequest, paths []string, msgs, n int) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]*storagev1.GetRequest(nil), tp.requests...), append([]string(nil), tp.paths...), tp.dataMsgs, tp.dataBytes
}

type tappedStream struct {
	grpc.ServerStream
	tap *tap
}

func (s *tappedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if req, ok := m.(*storagev1.GetRequest); ok && err == nil {
		s.tap.mu.Lock()
		s.tap.requests = append(s.tap.requests, req)
		s.tap.mu.Unlock()
	}
	return err
}

func (s *tappedStream) SendMsg(m any) error {
	if resp, ok := m.(*storagev1.GetResponse); ok {
		s.tap.mu.Lock()
		if len(resp.GetChunk()) > 0 {
			s.tap.dataMsgs++
			s.tap.dataBytes += len(resp.GetChunk())
		}
		hook := s.tap.beforePath
		if resp.GetLocalPath() != "" {
			s.tap.paths = append(s.tap.paths, resp.GetLocalPath())
		}
		s.tap.mu.Unlock()
		if resp.GetLocalPath() != "" && hook != nil {
			hook(resp)
		}
	}
	return s.ServerStream.SendMsg(m)
}

// serveTest serves srv over an in-memory connection and returns a client.
func serveTest(t *testing.T, srv storagev1.StorageServer, tp *tap) storagev1.StorageClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(grpc.StreamInterceptor(tp.interceptor))
	storagev1.RegisterStorageServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
	})
	return storagev1.NewStorageClient(conn)
}

// openTest opens a store through the protocol on an SDK server whose
// stores are st.
func openTest(t *testing.T, st Storage, tp *tap) Storage {
	t.Helper()
	c := serveTest(t, newGRPCServer(func(context.Context, map[string]string) (Storage, error) { return st, nil }), tp)
	s, err := NewGRPCOpener(c).Open(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// streamStore streams objects from memory; the other methods are not
// used by these tests.
type streamStore struct {
	Storage // nil: calling anything else panics
	objects map[string][]byte
}

func (s *streamStore) Capabilities() Capabilities { return Capabilities{} }

func (s *streamStore) Get(_ context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	b, ok := s.objects[key]
	if !ok {
		return nil, Errorf(NotFound, "%s not found", key)
	}
	return io.NopCloser(bytes.NewReader(cut(b, offset, length))), nil
}

// localStore streams its objects like streamStore and names local files
// for them through localPath.
type localStore struct {
	streamStore
	localPath func(key string) (string, error)
}

func (s *localStore) LocalPath(_ context.Context, key string) (string, error) {
	return s.localPath(key)
}

// cut is the range of b that Storage.Get returns.
func cut(b []byte, offset, length int64) []byte {
	end := int64(len(b))
	if length >= 0 && offset+length < end {
		end = offset + length
	}
	if offset >= end {
		return nil
	}
	return b[offset:end]
}

func readAll(ctx context.Context, st Storage, key string, offset, length int64) ([]byte, error) {
	rc, err := st.Get(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func testContent(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// writeFiles writes each object into dir and returns a localPath that
// names those files, NotFound for any other key.
func writeFiles(t *testing.T, dir string, objects map[string][]byte) func(string) (string, error) {
	t.Helper()
	for k, b := range objects {
		if err := os.WriteFile(filepath.Join(dir, k), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return func(key string) (string, error) {
		if _, ok := objects[key]; !ok {
			return "", Errorf(NotFound, "%s not found", key)
		}
		return filepath.Join(dir, key), nil
	}
}

// TestGetLocalFile checks that a store that names local files serves
// every range from the file and sends no data over the stream: the
// store's streamed bytes differ from the file's, so a streamed answer
// would fail the comparison as well as the count.
func TestGetLocalFile(t *testing.T) {
	content := testContent(3*chunkSize + 123)
	size := int64(len(content))
	marker := bytes.Repeat([]byte{'S'}, len(content))
	for _, tc := range []struct {
		name           string
		offset, length int64
	}{
		{"whole", 0, -1},
		{"prefix", 0, 100},
		{"middle", chunkSize - 5, chunkSize + 10},
		{"middle to end", size / 2, -1},
		{"cut short at end", size - 7, 100},
		{"empty range", 10, 0},
		{"offset at end", size, -1},
		{"offset past end", size + 100, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := &tap{}
			files := writeFiles(t, t.TempDir(), map[string][]byte{"obj": content})
			st := openTest(t, &localStore{streamStore: streamStore{objects: map[string][]byte{"obj": marker}}, localPath: files}, tp)
			got, err := readAll(context.Background(), st, "obj", tc.offset, tc.length)
			if err != nil {
				t.Fatal(err)
			}
			if want := cut(content, tc.offset, tc.length); !bytes.Equal(got, want) {
				t.Fatalf("Get(%d, %d) returned %d bytes, want %d bytes of the file (got streamed marker bytes: %v)",
					tc.offset, tc.length, len(got), len(want), len(got) > 0 && got[0] == 'S')
			}
			reqs, paths, msgs, n := tp.snapshot()
			if len(reqs) != 1 || !reqs[0].GetLocalOk() || len(paths) != 1 {
				t.Errorf("want one Get with local_ok answered by a local path; got %d requests, %d paths", len(reqs), len(paths))
			}
			if msgs != 0 {
				t.Errorf("%d data messages (%d bytes) went over the stream, want none", msgs, n)
			}
		})
	}
}

// TestGetLocalFallback checks that a local path the host cannot use, or
// a store that cannot name one, ends in a streamed read with the right
// bytes, and that a missing object is NotFound either way.
func TestGetLocalFallback(t *testing.T) {
	content := testContent(chunkSize + 17)
	for _, tc := range []struct {
		name string
		// localPath overrides the store's answer (nil: the written file).
		localPath func(file string) (string, error)
		// before changes the file (or the message) just before the path
		// goes to the host, after the server checked it. It runs on the
		// server's goroutine, so it returns its failure.
		before   func(file string, resp *storagev1.GetResponse) error
		inDir    bool   // run the test in the file's directory
		skipRoot bool   // the test needs file modes to deny reading
		streamed []byte // what the store streams; nil: not found
		wantErr  error
		// wantPath: the server sent a local path (the host refused it).
		wantPath bool
	}{
		{
			name:   "file removed before open",
			before: func(file string, _ *storagev1.GetResponse) error { return os.Remove(file) },
			// the store still streams it, as a store whose object moved would
			streamed: content, wantPath: true,
		},
		{
			name:   "file removed and object gone",
			before: func(file string, _ *storagev1.GetResponse) error { return os.Remove(file) },
			// the second Get reports the plugin's own NotFound
			wantErr: ErrNotFound, wantPath: true,
		},
		{
			name: "path is a directory by then",
			before: func(file string, resp *storagev1.GetResponse) error {
				if err := os.Remove(file); err != nil {
					return err
				}
				if err := os.Mkdir(file, 0o755); err != nil {
					return err
				}
				// The size the host checks matches, so only the check of
				// the file's type makes it stream.
				fi, err := os.Stat(file)
				if err == nil {
					resp.Info.Size = fi.Size()
				}
				return err
			},
			streamed: content, wantPath: true,
		},
		{
			name: "file replaced by one of another size",
			before: func(file string, _ *storagev1.GetResponse) error {
				return os.WriteFile(file, []byte("short"), 0o644)
			},
			streamed: content, wantPath: true,
		},
		{
			name: "path relative on the wire",
			// The host's working directory holds the very file, so only
			// the refusal of a relative path makes it stream.
			before: func(file string, resp *storagev1.GetResponse) error {
				resp.LocalPath = filepath.Base(file)
				return nil
			},
			inDir: true, streamed: content, wantPath: true,
		},
		{
			name:     "unreadable file",
			before:   func(file string, _ *storagev1.GetResponse) error { return os.Chmod(file, 0) },
			skipRoot: true, streamed: content, wantPath: true,
		},
		{
			name:      "store names a relative path",
			localPath: func(string) (string, error) { return "obj", nil },
			streamed:  content,
		},
		{
			name:      "store names a missing file",
			localPath: func(file string) (string, error) { return file + ".gone", nil },
			streamed:  content,
		},
		{
			name:      "store cannot name a file",
			localPath: func(string) (string, error) { return "", Errorf(Unavailable, "not now") },
			streamed:  content,
		},
		{
			name:      "store reports the key missing",
			localPath: func(string) (string, error) { return "", Errorf(NotFound, "obj not found") },
			streamed:  content, // never reached: LocalPath's NotFound is the answer
			wantErr:   ErrNotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skipRoot && os.Geteuid() == 0 {
				t.Skip("root reads files whatever their mode")
			}
			file := filepath.Join(t.TempDir(), "obj")
			if err := os.WriteFile(file, content, 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.inDir {
				t.Chdir(filepath.Dir(file))
			}
			tp := &tap{}
			if tc.before != nil {
				tp.beforePath = func(resp *storagev1.GetResponse) {
					if err := tc.before(file, resp); err != nil {
						t.Errorf("prepare the file before the host opens it: %v", err)
					}
				}
			}
			objects := map[string][]byte{}
			if tc.streamed != nil {
				objects["obj"] = tc.streamed
			}
			ls := &localStore{streamStore: streamStore{objects: objects}, localPath: func(string) (string, error) { return file, nil }}
			if tc.localPath != nil {
				ls.localPath = func(string) (string, error) { return tc.localPath(file) }
			}
			st := openTest(t, ls, tp)
			got, err := readAll(context.Background(), st, "obj", 5, -1)
			_, paths, msgs, _ := tp.snapshot()
			if (len(paths) > 0) != tc.wantPath {
				t.Errorf("server sent local paths %q; want a path sent: %v", paths, tc.wantPath)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Get = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := content[5:]; !bytes.Equal(got, want) {
				t.Fatalf("Get returned %d bytes, want the %d streamed bytes", len(got), len(want))
			}
			if msgs == 0 {
				t.Errorf("no data went over the stream: the read did not fall back")
			}
		})
	}
}

// TestGetWithoutLocalFiler checks that a store that does not implement
// LocalFiler streams every range as before, though the host allows local
// reads.
func TestGetWithoutLocalFiler(t *testing.T) {
	content := testContent(2*chunkSize + 9)
	tp := &tap{}
	st := openTest(t, &streamStore{objects: map[string][]byte{"obj": content}}, tp)
	wantRanges(t, st, content, [][2]int64{{0, -1}, {chunkSize, 100}, {int64(len(content)) + 1, -1}})
	reqs, paths, msgs, n := tp.snapshot()
	if len(paths) != 0 || msgs == 0 || n != len(content)+100 {
		t.Errorf("sent %d paths, %d data messages of %d bytes; want no path, %d bytes streamed", len(paths), msgs, n, len(content)+100)
	}
	for _, req := range reqs {
		if !req.GetLocalOk() {
			t.Errorf("Get %s did not allow a local read", req.GetKey())
		}
	}
}

// oldServer is a plugin of an SDK from before local reads: it knows
// nothing of local_ok and always streams.
type oldServer struct {
	storagev1.UnimplementedStorageServer
	objects map[string][]byte
}

func (s *oldServer) Open(context.Context, *storagev1.OpenRequest) (*storagev1.OpenResponse, error) {
	return &storagev1.OpenResponse{Store: 1, Capabilities: &storagev1.Capabilities{}}, nil
}

func (s *oldServer) Get(req *storagev1.GetRequest, stream storagev1.Storage_GetServer) error {
	b, ok := s.objects[req.GetKey()]
	if !ok {
		return toStatus(Errorf(NotFound, "%s not found", req.GetKey()))
	}
	if err := stream.Send(&storagev1.GetResponse{Info: &storagev1.ObjectInfo{Key: req.GetKey()}}); err != nil {
		return err
	}
	b = cut(b, req.GetOffset(), req.GetLength())
	for len(b) > 0 {
		n := min(len(b), 1000)
		if err := stream.Send(&storagev1.GetResponse{Chunk: b[:n]}); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// TestGetFromOldPlugin checks that the host reads from a plugin that
// ignores local_ok exactly as before.
func TestGetFromOldPlugin(t *testing.T) {
	content := testContent(5000)
	tp := &tap{}
	c := serveTest(t, &oldServer{objects: map[string][]byte{"obj": content}}, tp)
	ctx := context.Background()
	st, err := NewGRPCOpener(c).Open(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantRanges(t, st, content, [][2]int64{{0, -1}, {1500, 2000}, {4990, 100}, {6000, -1}})
	if reqs, _, _, _ := tp.snapshot(); len(reqs) != 5 {
		t.Errorf("%d Get requests, want 5 (one each, no retry)", len(reqs))
	}
}

// TestGetLocalLeavesNoStreams checks that local reads, and their
// fallbacks, end the Get streams they started: a stream left open keeps
// a goroutine of the gRPC client alive.
func TestGetLocalLeavesNoStreams(t *testing.T) {
	content := testContent(100)
	dir := t.TempDir()
	files := writeFiles(t, dir, map[string][]byte{"obj": content, "moved": content})
	tp := &tap{beforePath: func(resp *storagev1.GetResponse) {
		if filepath.Base(resp.GetLocalPath()) == "moved" {
			resp.LocalPath += ".elsewhere" // the host cannot open it and streams
		}
	}}
	st := openTest(t, &localStore{streamStore: streamStore{objects: map[string][]byte{"obj": content, "moved": content}}, localPath: files}, tp)
	ctx := context.Background()
	if _, err := readAll(ctx, st, "obj", 0, -1); err != nil { // warm up the connection
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 50 {
		for _, key := range []string{"obj", "moved"} {
			if got, err := readAll(ctx, st, key, 0, -1); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("Get(%s) = %d bytes, %v", key, len(got), err)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+5 {
		t.Fatalf("%d goroutines after 100 Gets, %d before: Get streams are left open", n, before)
	}
}

// wantRanges reads each (offset, length) range of the object "obj" from st
// and compares it with content, then requires a missing key to be NotFound.
func wantRanges(t *testing.T, st Storage, content []byte, ranges [][2]int64) {
	t.Helper()
	ctx := context.Background()
	for _, r := range ranges {
		got, err := readAll(ctx, st, "obj", r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		if want := cut(content, r[0], r[1]); !bytes.Equal(got, want) {
			t.Errorf("Get(%d, %d) returned %d bytes, want %d", r[0], r[1], len(got), len(want))
		}
	}
	if _, err := st.Get(ctx, "missing", 0, -1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v, want not found", err)
	}
}
