package sdk

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	storagev1 "github.com/sqlitereplicator/replicator/sdk/proto/storage/v1"
)

// Opener opens stores in a running plugin; it is what the host gets from a
// plugin process.
type Opener interface {
	Open(ctx context.Context, settings map[string]string) (Storage, error)
}

// grpcClient is the host's end of protocol v1.
type grpcClient struct {
	rpc storagev1.StorageClient
}

// NewGRPCOpener returns an Opener speaking protocol v1 over an existing
// client connection. Hosts normally get one through the host package.
func NewGRPCOpener(c storagev1.StorageClient) Opener { return &grpcClient{rpc: c} }

func (c *grpcClient) Open(ctx context.Context, settings map[string]string) (Storage, error) {
	resp, err := c.rpc.Open(ctx, &storagev1.OpenRequest{Settings: settings})
	if err != nil {
		return nil, fromStatus(ctx, err)
	}
	return &remoteStore{rpc: c.rpc, id: resp.GetStore(), caps: capsFromProto(resp.GetCapabilities())}, nil
}

// remoteStore is a Storage served by a plugin process.
type remoteStore struct {
	rpc  storagev1.StorageClient
	id   uint64
	caps Capabilities
}

func (s *remoteStore) Capabilities() Capabilities { return s.caps }

func (s *remoteStore) Close() error {
	_, err := s.rpc.Close(context.Background(), &storagev1.CloseRequest{Store: s.id})
	return fromStatus(context.Background(), err)
}

func (s *remoteStore) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	// The stream gets its own context so that a failure reading r aborts
	// the stream (cancel) instead of committing it (CloseAndRecv).
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.rpc.Put(sctx)
	if err != nil {
		return ObjectInfo{}, fromStatus(ctx, err)
	}
	hdr := &storagev1.PutHeader{Store: s.id, Key: key, IfAbsent: opts.IfAbsent, IfMatch: opts.IfMatch}
	if err := stream.Send(&storagev1.PutRequest{Msg: &storagev1.PutRequest_Header{Header: hdr}}); err != nil {
		return ObjectInfo{}, s.sendErr(ctx, stream, err)
	}
	// The buffer grows to chunkSize only for an object that fills it: most
	// objects are small, and a daemon that starts a thousand databases
	// sends a thousand of them at once.
	buf := make([]byte, firstChunkSize)
	for {
		n, rerr := fill(r, buf)
		if n > 0 {
			chunk := &storagev1.PutRequest{Msg: &storagev1.PutRequest_Chunk{Chunk: buf[:n]}}
			if err := stream.Send(chunk); err != nil {
				return ObjectInfo{}, s.sendErr(ctx, stream, err)
			}
		}
		if n == len(buf) && len(buf) < chunkSize {
			buf = make([]byte, min(4*len(buf), chunkSize))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			cancel()
			return ObjectInfo{}, fmt.Errorf("read data for %s: %w", key, rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return ObjectInfo{}, fromStatus(ctx, err)
	}
	return infoFromProto(resp.GetInfo()), nil
}

// sendErr returns the real reason a Send failed: gRPC reports a failed
// stream as io.EOF on Send and the status on the receive side.
func (s *remoteStore) sendErr(ctx context.Context, stream storagev1.Storage_PutClient, err error) error {
	if err == io.EOF {
		_, err = stream.CloseAndRecv()
	}
	return fromStatus(ctx, err)
}

// Get asks the plugin for the object and allows it to answer with a local
// file path (see LocalFiler), which it reads itself; when it cannot open
// that file, it asks again for the bytes as a stream.
func (s *remoteStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	req := &storagev1.GetRequest{Store: s.id, Key: key, Offset: offset, Length: length, LocalOk: true}
	r, first, err := s.startGet(ctx, req)
	if err != nil {
		return nil, err
	}
	path := first.GetLocalPath()
	if path == "" {
		return r, nil
	}
	// The plugin sends nothing after the path; end its stream now.
	r.Close()
	rc, err := openLocal(path, first.GetInfo().GetSize(), offset, length)
	if err == nil {
		return rc, nil
	}
	slog.Debug("reading through the plugin: cannot read the object's local file", "key", key, "err", err)
	req.LocalOk = false
	r, _, err = s.startGet(ctx, req)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// startGet sends req and waits for the first message, which tells whether
// the object exists. The returned reader holds the stream's resources
// until it is closed.
func (s *remoteStore) startGet(ctx context.Context, req *storagev1.GetRequest) (*getReader, *storagev1.GetResponse, error) {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := s.rpc.Get(sctx, req)
	if err != nil {
		cancel()
		return nil, nil, fromStatus(ctx, err)
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		return nil, nil, fromStatus(ctx, err)
	}
	return &getReader{ctx: ctx, stream: stream, cancel: cancel, buf: first.GetChunk()}, first, nil
}

// getReader presents a Get stream as an io.ReadCloser.
type getReader struct {
	ctx    context.Context
	stream storagev1.Storage_GetClient
	cancel context.CancelFunc
	buf    []byte
	err    error
}

func (r *getReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		msg, err := r.stream.Recv()
		if err == io.EOF {
			r.err = io.EOF
			continue
		}
		if err != nil {
			r.err = fromStatus(r.ctx, err)
			continue
		}
		r.buf = msg.GetChunk()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *getReader) Close() error {
	r.cancel()
	return nil
}

func (s *remoteStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	resp, err := s.rpc.Stat(ctx, &storagev1.StatRequest{Store: s.id, Key: key})
	if err != nil {
		return ObjectInfo{}, fromStatus(ctx, err)
	}
	return infoFromProto(resp.GetInfo()), nil
}

func (s *remoteStore) List(ctx context.Context, prefix, startAfter string, fn func(ObjectInfo) error) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.rpc.List(sctx, &storagev1.ListRequest{Store: s.id, Prefix: prefix, StartAfter: startAfter})
	if err != nil {
		return fromStatus(ctx, err)
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fromStatus(ctx, err)
		}
		for _, o := range msg.GetObjects() {
			if err := fn(infoFromProto(o)); err != nil {
				return err
			}
		}
	}
}

func (s *remoteStore) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	for _, k := range keys {
		if err := ValidateKey(k); err != nil {
			return err
		}
	}
	_, err := s.rpc.Delete(ctx, &storagev1.DeleteRequest{Store: s.id, Keys: keys})
	return fromStatus(ctx, err)
}

// fill reads into buf until it is full or r fails. Unlike io.ReadFull it
// reports only r's own io.EOF as the end of the data: any other error, an
// io.ErrUnexpectedEOF from a cut-off source included, aborts the transfer.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
