package sdk

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	storagev1 "github.com/sqlitereplicator/replicator/sdk/proto/storage/v1"
)

// chunkSize is the size of the data messages of Put and Get: well under
// gRPC's 4 MiB message limit, large enough to keep per-message cost small.
const chunkSize = 256 << 10

// firstChunkSize is the size of the first data message of a Put; the next
// ones grow to chunkSize.
const firstChunkSize = 16 << 10

// listBatch is how many entries one List message carries.
const listBatch = 500

// grpcServer serves protocol v1 on the plugin side, holding the stores
// opened by the host.
type grpcServer struct {
	storagev1.UnimplementedStorageServer
	open OpenFunc

	mu     sync.Mutex
	next   uint64
	stores map[uint64]Storage
}

func newGRPCServer(open OpenFunc) *grpcServer {
	return &grpcServer{open: open, stores: map[uint64]Storage{}}
}

func (s *grpcServer) store(id uint64) (Storage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.stores[id]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "unknown store handle %d (was it closed, or did the plugin restart?)", id)
	}
	return st, nil
}

func (s *grpcServer) Open(ctx context.Context, req *storagev1.OpenRequest) (*storagev1.OpenResponse, error) {
	st, err := s.open(ctx, req.GetSettings())
	if err != nil {
		return nil, toStatus(err)
	}
	s.mu.Lock()
	s.next++
	id := s.next
	s.stores[id] = st
	s.mu.Unlock()
	return &storagev1.OpenResponse{Store: id, Capabilities: capsToProto(st.Capabilities())}, nil
}

func (s *grpcServer) Close(ctx context.Context, req *storagev1.CloseRequest) (*storagev1.CloseResponse, error) {
	s.mu.Lock()
	st, ok := s.stores[req.GetStore()]
	delete(s.stores, req.GetStore())
	s.mu.Unlock()
	if ok {
		if err := st.Close(); err != nil {
			return nil, toStatus(err)
		}
	}
	return &storagev1.CloseResponse{}, nil
}

func (s *grpcServer) Capabilities(ctx context.Context, req *storagev1.CapabilitiesRequest) (*storagev1.CapabilitiesResponse, error) {
	st, err := s.store(req.GetStore())
	if err != nil {
		return nil, err
	}
	return &storagev1.CapabilitiesResponse{Capabilities: capsToProto(st.Capabilities())}, nil
}

func (s *grpcServer) Put(stream storagev1.Storage_PutServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return status.Error(codes.InvalidArgument, "put: the first message must carry the header")
	}
	if err := ValidateKey(hdr.GetKey()); err != nil {
		return toStatus(err)
	}
	st, err := s.store(hdr.GetStore())
	if err != nil {
		return err
	}
	info, err := st.Put(stream.Context(), hdr.GetKey(), &putReader{stream: stream}, PutOptions{IfAbsent: hdr.GetIfAbsent(), IfMatch: hdr.GetIfMatch()})
	if err != nil {
		return toStatus(fmt.Errorf("put %s: %w", hdr.GetKey(), err))
	}
	return stream.SendAndClose(&storagev1.PutResponse{Info: infoToProto(info)})
}

// putReader presents the data messages of a Put stream as an io.Reader.
// It returns io.EOF only when the host half-closed the stream, which is the
// host's "commit"; a cancelled or broken stream is an error, so the plugin
// discards what it received.
type putReader struct {
	stream storagev1.Storage_PutServer
	buf    []byte
}

func (r *putReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		msg, err := r.stream.Recv()
		if err == io.EOF {
			return 0, io.EOF
		}
		if err != nil {
			return 0, fmt.Errorf("receive put data: %w", err)
		}
		if msg.GetHeader() != nil {
			return 0, Errorf(InvalidArgument, "put: a second header in one stream")
		}
		r.buf = msg.GetChunk()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (s *grpcServer) Get(req *storagev1.GetRequest, stream storagev1.Storage_GetServer) error {
	if err := ValidateKey(req.GetKey()); err != nil {
		return toStatus(err)
	}
	if req.GetOffset() < 0 {
		return status.Errorf(codes.InvalidArgument, "get %s: negative offset %d", req.GetKey(), req.GetOffset())
	}
	st, err := s.store(req.GetStore())
	if err != nil {
		return err
	}
	if lf, ok := st.(LocalFiler); ok && req.GetLocalOk() {
		if done, err := sendLocalPath(stream, lf, req.GetKey()); done || err != nil {
			return err
		}
	}
	rc, err := st.Get(stream.Context(), req.GetKey(), req.GetOffset(), req.GetLength())
	if err != nil {
		return toStatus(fmt.Errorf("get %s: %w", req.GetKey(), err))
	}
	defer rc.Close()
	// The first message tells the host that the object exists before any
	// data arrives, so a missing key fails Get itself, not its first Read.
	if err := stream.Send(&storagev1.GetResponse{Info: &storagev1.ObjectInfo{Key: req.GetKey()}}); err != nil {
		return err
	}
	buf := make([]byte, chunkSize)
	for {
		n, err := fill(rc, buf)
		if n > 0 {
			if err := stream.Send(&storagev1.GetResponse{Chunk: buf[:n]}); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return toStatus(fmt.Errorf("read %s: %w", req.GetKey(), err))
		}
	}
}

// sendLocalPath answers a Get with the path of the file that holds the
// object, when the store can name one: a single message, no data. It
// reports done=false, and no error, when the object should be streamed
// instead: LocalPath failed with anything but NotFound, or its answer is
// not an absolute path of a regular file.
func sendLocalPath(stream storagev1.Storage_GetServer, lf LocalFiler, key string) (done bool, err error) {
	ctx := stream.Context()
	path, err := lf.LocalPath(ctx, key)
	if err != nil {
		if CodeOf(err) == NotFound || ctx.Err() != nil {
			return true, toStatus(fmt.Errorf("get %s: %w", key, err))
		}
		slog.Debug("streaming an object the store could not name a local file for", "key", key, "err", err)
		return false, nil
	}
	// The size lets the host check that it opened the same file.
	fi, err := os.Stat(path)
	if err != nil || !filepath.IsAbs(path) || !fi.Mode().IsRegular() {
		slog.Debug("streaming an object whose local path is unusable", "key", key, "path", path, "err", err)
		return false, nil
	}
	return true, stream.Send(&storagev1.GetResponse{Info: &storagev1.ObjectInfo{Key: key, Size: fi.Size()}, LocalPath: path})
}

func (s *grpcServer) Stat(ctx context.Context, req *storagev1.StatRequest) (*storagev1.StatResponse, error) {
	if err := ValidateKey(req.GetKey()); err != nil {
		return nil, toStatus(err)
	}
	st, err := s.store(req.GetStore())
	if err != nil {
		return nil, err
	}
	info, err := st.Stat(ctx, req.GetKey())
	if err != nil {
		return nil, toStatus(fmt.Errorf("stat %s: %w", req.GetKey(), err))
	}
	return &storagev1.StatResponse{Info: infoToProto(info)}, nil
}

func (s *grpcServer) List(req *storagev1.ListRequest, stream storagev1.Storage_ListServer) error {
	if err := ValidatePrefix(req.GetPrefix()); err != nil {
		return toStatus(err)
	}
	st, err := s.store(req.GetStore())
	if err != nil {
		return err
	}
	batch := make([]*storagev1.ObjectInfo, 0, listBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := stream.Send(&storagev1.ListResponse{Objects: batch})
		batch = make([]*storagev1.ObjectInfo, 0, listBatch)
		return err
	}
	err = st.List(stream.Context(), req.GetPrefix(), req.GetStartAfter(), func(oi ObjectInfo) error {
		batch = append(batch, infoToProto(oi))
		if len(batch) == listBatch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return toStatus(fmt.Errorf("list %q: %w", req.GetPrefix(), err))
	}
	return flush()
}

func (s *grpcServer) Delete(ctx context.Context, req *storagev1.DeleteRequest) (*storagev1.DeleteResponse, error) {
	for _, k := range req.GetKeys() {
		if err := ValidateKey(k); err != nil {
			return nil, toStatus(err)
		}
	}
	st, err := s.store(req.GetStore())
	if err != nil {
		return nil, err
	}
	if err := st.Delete(ctx, req.GetKeys()...); err != nil {
		return nil, toStatus(fmt.Errorf("delete: %w", err))
	}
	return &storagev1.DeleteResponse{}, nil
}

// closeAll closes every open store; the plugin is shutting down.
func (s *grpcServer) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, st := range s.stores {
		_ = st.Close()
		delete(s.stores, id)
	}
}

func capsToProto(c Capabilities) *storagev1.Capabilities {
	return &storagev1.Capabilities{IfAbsent: c.IfAbsent, IfMatch: c.IfMatch, MaxObjectSize: c.MaxObjectSize}
}

func capsFromProto(c *storagev1.Capabilities) Capabilities {
	return Capabilities{IfAbsent: c.GetIfAbsent(), IfMatch: c.GetIfMatch(), MaxObjectSize: c.GetMaxObjectSize()}
}

func infoToProto(oi ObjectInfo) *storagev1.ObjectInfo {
	var mt int64
	if !oi.ModTime.IsZero() {
		mt = oi.ModTime.UnixNano()
	}
	return &storagev1.ObjectInfo{Key: oi.Key, Size: oi.Size, Etag: oi.ETag, ModTimeUnixNano: mt}
}

func infoFromProto(p *storagev1.ObjectInfo) ObjectInfo {
	oi := ObjectInfo{Key: p.GetKey(), Size: p.GetSize(), ETag: p.GetEtag()}
	if p.GetModTimeUnixNano() != 0 {
		oi.ModTime = time.Unix(0, p.GetModTimeUnixNano())
	}
	return oi
}
