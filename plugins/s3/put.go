package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/sqlitereplicator/replicator/sdk"
)

// abortTimeout bounds the abort of a failed multipart upload, which runs
// even when the put's own context is cancelled.
const abortTimeout = time.Minute

// Put reads up to two parts of r first: an object that fits in one part is
// a single PutObject (S3 needs the length before the body), and a larger
// one a multipart upload. Either way S3 makes the object visible whole or
// not at all.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	name, err := s.objectKey("put", key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	c := condNone
	switch {
	case opts.IfAbsent && opts.IfMatch != "":
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.InvalidArgument, "s3: put %q: IfAbsent and IfMatch together can never succeed", key)
	case (opts.IfAbsent || opts.IfMatch != "") && !s.opt.conditional:
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.InvalidArgument, "s3: put %q: conditional put refused: conditional-writes is false for this store, so it declares no IfAbsent/IfMatch capability", key)
	case opts.IfAbsent:
		c = condAbsent
	case opts.IfMatch != "":
		c = condMatch
	}
	r = ctxReader{ctx: ctx, r: r}
	first, eof, err := fill(r, nil, int(s.opt.partSize))
	if err != nil {
		return sdk.ObjectInfo{}, s.readErr(ctx, key, err)
	}
	if eof {
		return s.putObject(ctx, key, name, first, opts, c)
	}
	second, eof, err := fill(r, nil, int(s.opt.partSize))
	if err != nil {
		return sdk.ObjectInfo{}, s.readErr(ctx, key, err)
	}
	if eof && len(second) == 0 {
		return s.putObject(ctx, key, name, first, opts, c)
	}
	return s.putMultipart(ctx, key, name, r, [][]byte{first, second}, eof, opts, c)
}

// readErr describes a failure to read the data of a put.
func (s *Store) readErr(ctx context.Context, key string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("s3: put %q: %w", key, ctx.Err())
	}
	return fmt.Errorf("s3: put %q: reading the data: %w", key, err)
}

// applyCond sets the conditional-write headers of opts.
func applyCond(opts sdk.PutOptions, ifNoneMatch, ifMatch **string) {
	if opts.IfAbsent {
		*ifNoneMatch = aws.String("*")
	}
	if opts.IfMatch != "" {
		*ifMatch = aws.String(quoteETag(opts.IfMatch))
	}
}

func (s *Store) putObject(ctx context.Context, key, name string, data []byte, opts sdk.PutOptions, c cond) (sdk.ObjectInfo, error) {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.opt.bucket),
		Key:           aws.String(name),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/octet-stream"),
	}
	if s.opt.sse != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(s.opt.sse)
	}
	if s.opt.kmsKeyID != "" {
		in.SSEKMSKeyId = aws.String(s.opt.kmsKeyID)
	}
	if s.opt.storageClass != "" {
		in.StorageClass = types.StorageClass(s.opt.storageClass)
	}
	applyCond(opts, &in.IfNoneMatch, &in.IfMatch)
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		return sdk.ObjectInfo{}, s.mapErr(err, fmt.Sprintf("put %q", key), key, c)
	}
	return sdk.ObjectInfo{Key: key, Size: int64(len(data)), ETag: trimETag(aws.ToString(out.ETag)), ModTime: serverTime(out.ResultMetadata)}, nil
}

// serverTime is the Date of a response, which is when S3 stored the object
// to within a second, or the local time if the server sent none.
func serverTime(md middleware.Metadata) time.Time {
	if raw, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok {
		if t, err := http.ParseTime(raw.Header.Get("Date")); err == nil {
			return t
		}
	}
	return time.Now()
}

// upload is one multipart upload in progress.
type upload struct {
	s        *Store
	key, id  string
	name     string
	ctx      context.Context // cancelled when a part fails
	cancel   context.CancelCauseFunc
	sem      chan struct{} // one token per part in flight
	free     chan []byte   // part buffers done with
	wg       sync.WaitGroup
	mu       sync.Mutex
	parts    []types.CompletedPart
	firstErr error
}

// putMultipart uploads the parts in bufs and then the rest of r, and
// completes the upload with the put's condition, or aborts it.
func (s *Store) putMultipart(ctx context.Context, key, name string, r io.Reader, bufs [][]byte, eof bool, opts sdk.PutOptions, c cond) (sdk.ObjectInfo, error) {
	if err := s.precheck(ctx, key, opts); err != nil {
		return sdk.ObjectInfo{}, err
	}
	in := &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(s.opt.bucket),
		Key:         aws.String(name),
		ContentType: aws.String("application/octet-stream"),
	}
	if s.opt.sse != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(s.opt.sse)
	}
	if s.opt.kmsKeyID != "" {
		in.SSEKMSKeyId = aws.String(s.opt.kmsKeyID)
	}
	if s.opt.storageClass != "" {
		in.StorageClass = types.StorageClass(s.opt.storageClass)
	}
	created, err := s.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return sdk.ObjectInfo{}, s.mapErr(err, fmt.Sprintf("put %q: start multipart upload", key), key, condNone)
	}
	u := &upload{s: s, key: key, name: name, id: aws.ToString(created.UploadId),
		sem: make(chan struct{}, s.opt.concurrency), free: make(chan []byte, s.opt.concurrency+1)}
	u.ctx, u.cancel = context.WithCancelCause(ctx)
	defer u.cancel(nil)

	size, err := u.send(r, bufs, eof)
	if err == nil {
		var info sdk.ObjectInfo
		if info, err = u.complete(opts, c); err == nil {
			info.Size = size
			return info, nil
		}
	}
	u.abort()
	return sdk.ObjectInfo{}, err
}

// precheck fails a conditional multipart put early when the condition is
// already false, rather than after uploading every part. The condition is
// still enforced, atomically, when the upload completes.
func (s *Store) precheck(ctx context.Context, key string, opts sdk.PutOptions) error {
	if !opts.IfAbsent && opts.IfMatch == "" {
		return nil
	}
	info, err := s.Stat(ctx, key)
	switch {
	case err != nil && sdk.CodeOf(err) != sdk.NotFound:
		return err
	case opts.IfAbsent && err == nil:
		return sdk.Errorf(sdk.AlreadyExists, "s3: put %q at %s: key exists (if-none-match: *)", key, s.where)
	case opts.IfMatch != "" && err != nil:
		return sdk.Errorf(sdk.PreconditionFailed, "s3: put %q at %s: key does not exist (if-match %s)", key, s.where, opts.IfMatch)
	case opts.IfMatch != "" && info.ETag != trimETag(opts.IfMatch):
		return sdk.Errorf(sdk.PreconditionFailed, "s3: put %q at %s: key has ETag %s, not %s (if-match)", key, s.where, info.ETag, opts.IfMatch)
	}
	return nil
}

// send uploads bufs and then the rest of r, part by part, and waits for
// every part. It returns the object's size.
func (u *upload) send(r io.Reader, bufs [][]byte, eof bool) (int64, error) {
	partSize := int(u.s.opt.partSize)
	var size int64
	allocated := len(bufs)
	for n := int32(1); ; n++ {
		var data []byte
		if len(bufs) > 0 {
			data, bufs = bufs[0], bufs[1:]
		} else {
			if eof {
				break
			}
			var buf []byte
			if allocated < cap(u.free) {
				allocated++
			} else {
				select {
				case buf = <-u.free:
				case <-u.ctx.Done():
				}
			}
			if u.ctx.Err() != nil {
				break
			}
			if buf == nil {
				buf = make([]byte, 0, partSize)
			}
			var err error
			if data, eof, err = fill(r, buf, partSize); err != nil {
				u.fail(u.s.readErr(u.ctx, u.key, err))
				break
			}
			if len(data) == 0 {
				break
			}
		}
		if n > maxParts {
			u.fail(sdk.Errorf(sdk.InvalidArgument, "s3: put %q: object is larger than %d parts of part-size %d bytes: raise part-size", u.key, maxParts, partSize))
			break
		}
		size += int64(len(data))
		if !u.start(n, data) {
			break
		}
	}
	u.wg.Wait()
	if err := u.err(); err != nil {
		return 0, err
	}
	if err := u.ctx.Err(); err != nil {
		return 0, fmt.Errorf("s3: put %q: %w", u.key, err)
	}
	return size, nil
}

// start uploads part n in the background once fewer than concurrency parts
// are in flight. It reports false when the upload has failed.
func (u *upload) start(n int32, data []byte) bool {
	select {
	case u.sem <- struct{}{}:
	case <-u.ctx.Done():
		return false
	}
	u.wg.Go(func() {
		defer func() { <-u.sem }()
		out, err := u.s.client.UploadPart(u.ctx, &s3.UploadPartInput{
			Bucket:        aws.String(u.s.opt.bucket),
			Key:           aws.String(u.name),
			UploadId:      aws.String(u.id),
			PartNumber:    aws.Int32(n),
			Body:          bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))),
		})
		if err != nil {
			u.fail(u.s.mapErr(err, fmt.Sprintf("put %q: upload part %d", u.key, n), u.key, condNone))
			return
		}
		u.mu.Lock()
		u.parts = append(u.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
		u.mu.Unlock()
		select {
		case u.free <- data[:0]:
		default: // more buffers than the pool holds: let it go
		}
	})
	return true
}

// fail records the first error and stops the other parts.
func (u *upload) fail(err error) {
	u.mu.Lock()
	if u.firstErr == nil {
		u.firstErr = err
	}
	u.mu.Unlock()
	u.cancel(err)
}

func (u *upload) err() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.firstErr
}

// complete makes the object visible, if the put's condition holds.
func (u *upload) complete(opts sdk.PutOptions, c cond) (sdk.ObjectInfo, error) {
	slices.SortFunc(u.parts, func(a, b types.CompletedPart) int { return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber)) })
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(u.s.opt.bucket),
		Key:             aws.String(u.name),
		UploadId:        aws.String(u.id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
	}
	applyCond(opts, &in.IfNoneMatch, &in.IfMatch)
	out, err := u.s.client.CompleteMultipartUpload(u.ctx, in)
	if err != nil {
		return sdk.ObjectInfo{}, u.s.mapErr(err, fmt.Sprintf("put %q: complete multipart upload", u.key), u.key, c)
	}
	return sdk.ObjectInfo{Key: u.key, ETag: trimETag(aws.ToString(out.ETag)), ModTime: serverTime(out.ResultMetadata)}, nil
}

// abort discards the upload's parts, with a context of its own since the
// put's may be what was cancelled. A failed abort leaves only invisible
// parts, which a bucket lifecycle rule can expire; it is logged, not
// returned, since the put's own error matters more.
func (u *upload) abort() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(u.ctx), abortTimeout)
	defer cancel()
	_, err := u.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(u.s.opt.bucket), Key: aws.String(u.name), UploadId: aws.String(u.id),
	})
	if err != nil && httpStatus(err) != http.StatusNotFound {
		slog.Warn("s3: could not abort a failed multipart upload; its parts stay stored (invisible) until a lifecycle rule removes them",
			"key", u.key, "bucket", u.s.opt.bucket, "error", u.s.mapErr(err, "abort multipart upload", u.key, condNone))
	}
}

// fill reads from r into buf[:0] until it holds size bytes or r ends, and
// reports whether r ended. buf grows by doubling from 64 KiB, so a small
// object costs little memory, up to size.
func fill(r io.Reader, buf []byte, size int) ([]byte, bool, error) {
	buf = buf[:0]
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(max(2*cap(buf), 64<<10), size))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), size)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
	return buf, false, nil
}

// ctxReader stops reading when ctx is cancelled, so that a put whose
// reader never fails still stops with its context.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
