// Package gcs is the Google Cloud Storage backend, built on
// cloud.google.com/go/storage over the JSON API.
//
// Keys are object names under an optional prefix (the "path" setting).
// Cloud Storage gives everything the contract asks for natively: an upload
// becomes visible only when it is finalised, so a Put whose reader fails
// cancels the upload and leaves nothing; generation preconditions make
// if-absent (ifGenerationMatch=0) and if-match (ifGenerationMatch=N)
// atomic on the server, so the ETag this backend reports is the object's
// generation in decimal; listings come back in byte order of names.
package gcs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/sqlitereplicator/replicator/sdk"
)

const (
	// maxNameLength is Cloud Storage's limit on an object name, in bytes of
	// UTF-8, prefix included.
	maxNameLength = 1024
	// maxObjectSize is Cloud Storage's largest object (5 TiB).
	maxObjectSize = 5 << 40
	// chunkSize is what an upload buffers before sending, and so what it
	// can resend on a transient error. Each Put of a large object holds
	// one such buffer; 8 MiB keeps many parallel Puts cheap while keeping
	// the number of requests per object low.
	chunkSize = 8 << 20
	// smallSize: an object that ends within this many bytes is sent with a
	// buffer of this size instead of chunkSize (the library allocates its
	// whole chunk buffer up front, and most objects are small).
	smallSize = 256 << 10
	// deleteWorkers bounds the parallel requests of one Delete: Cloud
	// Storage has no batch delete in this library, one request per key.
	deleteWorkers = 8
	// listPageSize is the server's largest page, asked for explicitly so
	// that emulators page the same way.
	listPageSize = 1000
	// openTimeout bounds Open's reachability check, so a wrong endpoint
	// fails start-up instead of hanging in retries.
	openTimeout = 30 * time.Second
)

// Store is a bucket, or a prefix in one, used as an object store.
type Store struct {
	cfg    *config
	client *storage.Client
	bucket *storage.BucketHandle
}

// Open opens the store described by settings (see docs/backends.md)
// and checks that the bucket exists and can be listed with the configured
// credentials, so a bad configuration fails here, naming what to fix.
func Open(ctx context.Context, settings map[string]string) (sdk.Storage, error) {
	cfg, err := parseSettings(settings)
	if err != nil {
		return nil, err
	}
	opts := []option.ClientOption{
		// Reads over the JSON API like every other call (the XML API is
		// the library's default for reads): one protocol, one error
		// format, and emulators support it.
		storage.WithJSONReads(),
		// The library's debug log (GOOGLE_SDK_GO_LOGGING_LEVEL) prints
		// request headers, access tokens included. This logger drops it,
		// so nothing secret can reach the replicator's log.
		option.WithLogger(slog.New(slog.DiscardHandler)),
	}
	if cfg.endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.endpoint))
	}
	switch {
	case cfg.credFile != "":
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, cfg.credFile))
	case cfg.endpoint != "":
		// An emulator such as fake-gcs-server takes no credentials.
		opts = append(opts, option.WithoutAuthentication())
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, clientError(cfg, err)
	}
	// A few quick retries of idempotent calls: the library's default
	// retries for ever, and the core, which has its own retry policy,
	// should hear about an outage in seconds, not when its context ends.
	client.SetRetry(storage.WithMaxAttempts(3), storage.WithBackoff(gax.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}))
	s := &Store{cfg: cfg, client: client, bucket: client.Bucket(cfg.bucket)}
	if err := s.probe(ctx); err != nil {
		client.Close()
		return nil, openError(cfg, err)
	}
	slog.Debug("gcs store opened", "bucket", cfg.bucket, "prefix", cfg.prefix, "server", cfg.where(), "credentials", cfg.credentialSource())
	return s, nil
}

// probe lists at most one object under the prefix. Listing needs only the
// storage.objects.list permission the store needs anyway (bucket.Attrs
// would need storage.buckets.get, which object-level roles lack), and a
// missing bucket is a 404 all the same.
func (s *Store) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	q := &storage.Query{Prefix: s.cfg.prefix, Projection: storage.ProjectionNoACL}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return err
	}
	it := s.bucket.Objects(ctx, q)
	it.PageInfo().MaxSize = 1
	if _, err := it.Next(); err != nil && !errors.Is(err, iterator.Done) {
		return err
	}
	return nil
}

// Capabilities: generation preconditions make both conditions atomic.
func (s *Store) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{IfAbsent: true, IfMatch: true, MaxObjectSize: maxObjectSize}
}

// Close releases the client's connections.
func (s *Store) Close() error { return s.client.Close() }

// name returns the object name of key.
func (s *Store) name(key string) (string, error) {
	if err := sdk.ValidateKey(key); err != nil {
		return "", err
	}
	n := s.cfg.prefix + key
	if len(n) > maxNameLength {
		return "", sdk.Errorf(sdk.InvalidArgument, "gcs: key %.40q... is too long: with the prefix %q it makes a %d-byte object name, over Cloud Storage's limit of %d", key, s.cfg.prefix, len(n), maxNameLength)
	}
	return n, nil
}

func (s *Store) info(key string, a *storage.ObjectAttrs) sdk.ObjectInfo {
	mod := a.Created // when this generation, i.e. this content, was written
	if mod.IsZero() {
		mod = a.Updated
	}
	return sdk.ObjectInfo{Key: key, Size: a.Size, ETag: strconv.FormatInt(a.Generation, 10), ModTime: mod}
}

// smallBufs recycles the buffers Put reads the start of an object into.
var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallSize); return &b }}

// Put uploads r. The upload runs under a context of its own that is
// cancelled on any failure before the Writer is closed: Cloud Storage
// finalises an object only when the Writer closes, so a cancelled upload
// never becomes visible.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	name, err := s.name(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	obj := s.bucket.Object(name)
	switch {
	case opts.IfAbsent && opts.IfMatch != "":
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.InvalidArgument, "gcs: put %s: IfAbsent and IfMatch together can never both hold", key)
	case opts.IfAbsent:
		obj = obj.If(storage.Conditions{DoesNotExist: true})
	case opts.IfMatch != "":
		gen, err := strconv.ParseInt(opts.IfMatch, 10, 64)
		if err != nil || gen <= 0 || strconv.FormatInt(gen, 10) != opts.IfMatch {
			// Not a generation, so not an ETag this store ever gave out.
			return sdk.ObjectInfo{}, sdk.Errorf(sdk.PreconditionFailed, "gcs: put %s: if-match %q is not an ETag of this store (a generation number), so it cannot match", key, opts.IfMatch)
		}
		obj = obj.If(storage.Conditions{GenerationMatch: gen})
	}

	// Read the start of the object first: if it ends there, a small
	// buffer will do for the upload.
	bp := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(bp)
	head := *bp
	n, whole, rerr := readHead(r, head)
	if rerr != nil {
		return sdk.ObjectInfo{}, readError(key, rerr)
	}
	head = head[:n]

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.NewWriter(wctx)
	w.ContentType = "application/octet-stream" // no sniffing: values are opaque bytes
	w.ChunkSize = chunkSize
	if whole {
		w.ChunkSize = smallSize
	}
	if readFailed, err := s.copy(w, head, whole, r); err != nil {
		cancel() // abandon the upload; it was never finalised
		if readFailed {
			return sdk.ObjectInfo{}, readError(key, err)
		}
		return sdk.ObjectInfo{}, s.putError(err, key, opts)
	}
	if err := ctx.Err(); err != nil {
		cancel()
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.Unavailable, "gcs: put %s: %w", key, err)
	}
	if err := w.Close(); err != nil {
		return sdk.ObjectInfo{}, s.putError(err, key, opts)
	}
	return s.info(key, w.Attrs()), nil
}

// readHead fills buf from r and reports whether r ended (with io.EOF, and
// nothing else: io.ReadFull would turn a reader's own io.ErrUnexpectedEOF,
// a truncated stream, into the look of a short object).
func readHead(r io.Reader, buf []byte) (n int, ended bool, err error) {
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

func readError(key string, err error) error {
	return sdk.Errorf(sdk.CodeOf(err), "gcs: put %s: read the data: %w", key, err)
}

// copy writes head and then, unless head is the whole object, the rest of
// r to w. readFailed tells a failure of r from one of the upload.
func (s *Store) copy(w io.Writer, head []byte, whole bool, r io.Reader) (readFailed bool, err error) {
	if _, err := w.Write(head); err != nil {
		return false, err
	}
	if whole {
		return false, nil
	}
	bp := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(bp)
	buf := *bp
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false, werr
			}
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return true, err
		}
	}
}

// putError maps an upload's failure; a failed precondition means the key
// exists (IfAbsent) or holds another generation (IfMatch).
func (s *Store) putError(err error, key string, opts sdk.PutOptions) error {
	if httpStatus(err) == http.StatusPreconditionFailed {
		if opts.IfAbsent {
			return sdk.Errorf(sdk.AlreadyExists, "gcs: put %s if absent: the key exists: %w", key, err)
		}
		return sdk.Errorf(sdk.PreconditionFailed, "gcs: put %s if match %s: the key is missing or has another ETag: %w", key, opts.IfMatch, err)
	}
	return s.wrap(err, "put %s", key)
}

// Get reads a range with one request. Cloud Storage answers a range that
// starts at or past the end with 416; the contract wants no bytes then.
// A 416 comes only for an object that exists (a missing one is 404), so
// it needs no second request.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	name, err := s.name(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, sdk.Errorf(sdk.InvalidArgument, "gcs: get %s: negative offset %d", key, offset)
	}
	if length == 0 {
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	if length < 0 {
		length = -1
	}
	r, err := s.bucket.Object(name).NewRangeReader(ctx, offset, length)
	if httpStatus(err) == http.StatusRequestedRangeNotSatisfiable {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	if err != nil {
		return nil, s.wrap(err, "get %s", key)
	}
	return &reader{r: r, s: s, key: key}, nil
}

// reader maps the errors of a download that fails part-way.
type reader struct {
	r   *storage.Reader
	s   *Store
	key string
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.wrap(err, "read %s", r.key)
	}
	return n, err
}

func (r *reader) Close() error { return r.r.Close() }

func (s *Store) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	name, err := s.name(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	a, err := s.bucket.Object(name).Attrs(ctx)
	if err != nil {
		return sdk.ObjectInfo{}, s.wrap(err, "stat %s", key)
	}
	return s.info(key, a), nil
}

// List pages through the objects under the prefix. The server lists in
// byte order of names and its StartOffset is inclusive, so the object
// named startAfter itself is skipped here.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	q := &storage.Query{Prefix: s.cfg.prefix + prefix, Projection: storage.ProjectionNoACL}
	if startAfter != "" {
		q.StartOffset = s.cfg.prefix + startAfter
	}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Generation", "Created", "Updated"}); err != nil {
		return err
	}
	it := s.bucket.Objects(ctx, q)
	it.PageInfo().MaxSize = listPageSize
	last := ""
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return s.wrap(err, "list %q", prefix)
		}
		if a.Name <= last || a.Name == q.StartOffset {
			if a.Name < last {
				return sdk.Errorf(sdk.Unknown, "gcs: list %q: the server listed %q after %q, out of order", prefix, a.Name, last)
			}
			continue
		}
		last = a.Name
		key := strings.TrimPrefix(a.Name, s.cfg.prefix)
		// Objects that no key names, such as the "folder/" placeholders
		// the Cloud console creates, are not the store's.
		if sdk.ValidateKey(key) != nil {
			continue
		}
		if err := fn(s.info(key, a)); err != nil {
			return err
		}
	}
}

// Delete sends one request per key, a few at a time; a key that is
// already gone is not an error.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	names := make([]string, len(keys))
	for i, k := range keys {
		n, err := s.name(k)
		if err != nil {
			return err
		}
		names[i] = n
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, deleteWorkers)
	)
	for i, n := range names {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			// Deleting is idempotent here (a 404 is success), so a
			// retry after a lost response is safe.
			err := s.bucket.Object(n).Retryer(storage.WithPolicy(storage.RetryAlways)).Delete(ctx)
			if err == nil || errors.Is(err, storage.ErrObjectNotExist) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if firstErr == nil {
				firstErr = s.wrap(err, "delete %s", keys[i])
				cancel()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return sdk.Errorf(sdk.Unavailable, "gcs: delete: %w", err)
	}
	return nil
}
