package azure

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Put uploads r as a block blob (see upload): the blob changes only with
// the final request, sent after r returned io.EOF, so a reader error, a
// cancelled ctx or a failed block leaves nothing visible.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	name, err := s.blobName(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	if opts.IfAbsent && opts.IfMatch != "" {
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.InvalidArgument, "azure: put %q: IfAbsent and IfMatch together can never succeed", key)
	}
	var cond blob.ModifiedAccessConditions
	switch {
	case opts.IfAbsent:
		cond.IfNoneMatch = to.Ptr(azcore.ETagAny)
	case opts.IfMatch != "":
		cond.IfMatch = quoteETag(opts.IfMatch)
	}
	src := &source{ctx: ctx, r: r, max: s.maxSize}
	res, err := upload(ctx, s.cc.NewBlockBlobClient(name), src, &blob.AccessConditions{ModifiedAccessConditions: &cond})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return sdk.ObjectInfo{}, fmt.Errorf("azure: put %q: %w", key, ctxErr)
		}
		if src.err != nil {
			// The data could not be read: say so, keeping the reader's
			// error (and its code, if it has one) in the chain.
			return sdk.ObjectInfo{}, fmt.Errorf("azure: put %q: reading the data: %w", key, src.err)
		}
		return sdk.ObjectInfo{}, s.putError(key, opts, err)
	}
	info := sdk.ObjectInfo{Key: key, Size: src.n, ETag: etagOf(res.etag)}
	if res.modified != nil {
		info.ModTime = *res.modified
	}
	return info, nil
}

// putError maps a failed conditional put: the service answers a taken key
// with 409 BlobAlreadyExists or 412, and a stale or missing If-Match with
// 412 (or 404 for a blob that is gone).
func (s *Store) putError(key string, opts sdk.PutOptions, err error) error {
	op := fmt.Sprintf("put %q", key)
	switch {
	case opts.IfAbsent && bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet):
		return sdk.Errorf(sdk.AlreadyExists, "azure: %s: the key exists (if-absent)", op)
	case opts.IfMatch != "" && bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobNotFound):
		return sdk.Errorf(sdk.PreconditionFailed, "azure: %s: the key does not exist with etag %s (if-match)", op, opts.IfMatch)
	}
	return s.fail(op, err)
}

// source is the reader a put uploads from: it stops at a cancelled ctx,
// refuses more than max bytes (more blocks than a blob may
// have), and remembers its own failure, so that Put tells a bad reader
// from a failed upload. upload reads it from one goroutine.
type source struct {
	ctx context.Context
	r   io.Reader
	max int64
	n   int64
	err error
}

func (s *source) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.n > s.max {
		s.err = sdk.Errorf(sdk.InvalidArgument, "object larger than the store's maximum of %d bytes (%d blocks of %d bytes)", s.max, maxBlocks, blockSize)
		return n, s.err
	}
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// Get downloads a range of the blob. The service answers a range that
// starts at or past the end (an empty blob included) with 416, which is
// an empty read here, never an error.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	name, err := s.blobName(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, sdk.Errorf(sdk.InvalidArgument, "azure: get %q: negative offset %d", key, offset)
	}
	op := fmt.Sprintf("get %q", key)
	if length == 0 {
		// No range means "all" to the service: check existence instead.
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	count := max(length, 0) // 0: to the end
	if count > math.MaxInt64-offset {
		count = 0 // a range past any blob's end
	}
	bc := s.cc.NewBlobClient(name)
	resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: offset, Count: count}})
	if bloberror.HasCode(err, bloberror.InvalidRange) {
		return io.NopCloser(strings.NewReader("")), nil
	}
	if err != nil {
		return nil, s.notFound(op, key, err)
	}
	// The retry reader resumes a body cut short with a ranged request
	// conditioned on the ETag, so a resumed read never mixes versions.
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
	return &reader{rc: body, s: s, key: key}, nil
}

// reader maps the errors of a download body like those of a request.
type reader struct {
	rc  io.ReadCloser
	s   *Store
	key string
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	if bloberror.HasCode(err, bloberror.ConditionNotMet) {
		// The resumed read found a new version: the caller reads again.
		return n, sdk.Errorf(sdk.Unavailable, "azure: read %q: the object was replaced while being read; read it again", r.key)
	}
	return n, r.s.fail(fmt.Sprintf("read %q", r.key), err)
}

func (r *reader) Close() error { return r.rc.Close() }

func (s *Store) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	name, err := s.blobName(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	p, err := s.cc.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		return sdk.ObjectInfo{}, s.notFound(fmt.Sprintf("stat %q", key), key, err)
	}
	info := sdk.ObjectInfo{Key: key, ETag: etagOf(p.ETag)}
	if p.ContentLength != nil {
		info.Size = *p.ContentLength
	}
	if p.LastModified != nil {
		info.ModTime = *p.LastModified
	}
	return info, nil
}

// notFound reports a missing blob as a short NotFound (an answer, not a
// failure); every other error goes through fail.
func (s *Store) notFound(op, key string, err error) error {
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return sdk.Errorf(sdk.NotFound, "azure: %s: %q not found", op, key)
	}
	return s.fail(op, err)
}

// Delete deletes each blob with its own request, deleteConcurrency at a
// time (the batch API is not available to every credential and emulator),
// taking the blob's snapshots along. A missing blob is success.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	type target struct{ key, name string }
	targets := make([]target, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		name, err := s.blobName(k)
		if err != nil {
			return err
		}
		if !seen[name] {
			seen[name] = true
			targets = append(targets, target{k, name})
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, deleteConcurrency)
	)
	for _, t := range targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := s.cc.NewBlobClient(t.name).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)})
			if err == nil || bloberror.HasCode(err, bloberror.BlobNotFound) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if firstErr == nil {
				firstErr = s.fail(fmt.Sprintf("delete %q", t.key), err)
				cancel() // stop the rest: the caller retries the batch
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
