// Package s3 is the storage backend for Amazon S3 and S3-compatible
// servers (Backblaze B2, Cloudflare R2, MinIO, Wasabi, DigitalOcean Spaces,
// versitygw, ...), built on aws-sdk-go-v2.
//
// An object is stored under path + "/" + key in the bucket. A put of up to
// part-size bytes is one PutObject; a larger one is streamed as a multipart
// upload of part-size parts, at most concurrency of them in flight, so a
// put never holds more than (concurrency+1) parts in memory whatever the
// object's size. A multipart upload becomes visible only when it is
// completed, and is aborted when the reader fails or the context is
// cancelled, so a failed put leaves nothing visible. Conditional puts use
// S3's conditional writes (If-None-Match: * and If-Match) on PutObject and
// CompleteMultipartUpload, which S3 decides atomically. Listing relies on
// S3 listing keys in UTF-8 byte order, which is the contract's order.
//
// The SDK's optional request and response checksums are off
// ("when required"): several S3-compatible servers reject or mis-handle
// them, the core verifies every object itself, and SigV4 already signs
// each request's payload hash.
package s3

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sqlitereplicator/replicator/sdk"
)

// openCheckTimeout bounds the reachability check of Open, so that a
// black-holed endpoint fails start-up instead of hanging it.
const openCheckTimeout = 30 * time.Second

// Store is an S3 bucket (or a path in one) used as an object store.
type Store struct {
	opt    *options
	client *s3.Client
	tr     *http.Transport
	// where names the server in error messages: the endpoint, or AWS with
	// the region.
	where string
	caps  sdk.Capabilities
}

var _ sdk.Storage = (*Store)(nil)

// Open opens the store described by settings (see docs/backends.md) and
// checks, with a one-key listing, that the bucket exists and the
// credentials may list it, so a wrong bucket, region, endpoint or key
// fails at start-up.
func Open(ctx context.Context, settings map[string]string) (sdk.Storage, error) {
	o, err := parseSettings(settings)
	if err != nil {
		return nil, err
	}
	s, err := newStore(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := s.check(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func newStore(ctx context.Context, o *options) (*Store, error) {
	// The SDK's own client, so that AWS_CA_BUNDLE and the defaults of the
	// SDK apply; parts and listings run concurrently against one host, and
	// too few idle connections per host would make most of them reconnect.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = 64
		if o.skipVerify {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{}
			}
			tr.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for by skip-verify, for test servers
		}
	})
	if o.skipVerify {
		slog.Warn("s3: skip-verify is set: the server's TLS certificate is not checked, so anyone on the network path can read and alter replicas; use it only for test servers with self-signed certificates",
			"endpoint", o.endpoint)
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if o.region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.region))
	}
	if o.profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(o.profile))
	}
	if o.accessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(o.accessKeyID, o.secretAccessKey, o.sessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		if o.profile != "" {
			return nil, invalid("load AWS configuration for setting \"profile\" = %q: %v (check the profile exists in ~/.aws/config or ~/.aws/credentials)", o.profile, err)
		}
		return nil, invalid("load AWS configuration from the environment: %v", err)
	}
	if cfg.Region == "" {
		return nil, invalid("no region: set setting \"region\" (the bucket's region, e.g. eu-west-1), AWS_REGION, or a region in the AWS profile")
	}
	o.region = cfg.Region
	// Keep the transport the SDK configured, to close its connections in
	// Close. Like the SDK's client, never follow redirects: S3 answers a
	// request to the wrong region with one, and a signed request cannot
	// be re-sent elsewhere.
	tr := awshttp.NewBuildableClient().GetTransport()
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		tr = bc.GetTransport()
	}
	cfg.HTTPClient = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.endpoint != "" {
			so.BaseEndpoint = aws.String(o.endpoint)
		}
		so.UsePathStyle = o.pathStyle
	})
	s := &Store{opt: o, client: client, tr: tr}
	s.where = "endpoint " + o.endpoint
	if o.endpoint == "" {
		s.where = "AWS S3 region " + o.region
	}
	s.caps = sdk.Capabilities{
		IfAbsent:      o.conditional,
		IfMatch:       o.conditional,
		MaxObjectSize: min(o.partSize*maxParts, maxObjectSize),
	}
	return s, nil
}

// check lists one key of the store's path, which needs the bucket to exist,
// the region and endpoint to be right and the credentials to allow
// listing, as replication does.
func (s *Store) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, openCheckTimeout)
	defer cancel()
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.opt.bucket),
		Prefix:  aws.String(s.opt.prefix),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return s.mapErr(err, "open", "", condNone)
	}
	return nil
}

// Capabilities: conditional puts unless conditional-writes is off; the
// largest object is what maxParts parts of part-size hold.
func (s *Store) Capabilities() sdk.Capabilities { return s.caps }

// Close drops the idle connections; the SDK client holds nothing else.
func (s *Store) Close() error {
	s.tr.CloseIdleConnections()
	return nil
}

// objectKey validates key and returns its name in the bucket.
func (s *Store) objectKey(op, key string) (string, error) {
	if err := sdk.ValidateKey(key); err != nil {
		return "", sdk.Errorf(sdk.InvalidArgument, "s3: %s: %w", op, err)
	}
	return s.opt.prefix + key, nil
}

func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	name, err := s.objectKey("get", key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, sdk.Errorf(sdk.InvalidArgument, "s3: get %q: negative offset %d", key, offset)
	}
	if length == 0 {
		// HTTP cannot ask for zero bytes; only existence matters.
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.opt.bucket), Key: aws.String(name)}
	ranged := offset > 0 || length > 0
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if ranged && httpStatus(err) == http.StatusRequestedRangeNotSatisfiable {
			// The object exists, and the range starts at or past its end.
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, s.mapErr(err, fmt.Sprintf("get %q", key), key, condNone)
	}
	body := io.Reader(out.Body)
	if ranged && out.ContentRange == nil {
		// A server that ignored the Range header sent the whole object.
		if _, err := io.CopyN(io.Discard, out.Body, offset); err != nil && err != io.EOF {
			out.Body.Close()
			return nil, s.mapErr(err, fmt.Sprintf("get %q: skip to offset %d", key, offset), key, condNone)
		}
	}
	if length > 0 {
		body = io.LimitReader(body, length)
	}
	return readCloser{body, out.Body}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

func (s *Store) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	name, err := s.objectKey("stat", key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.opt.bucket), Key: aws.String(name)})
	if err != nil {
		return sdk.ObjectInfo{}, s.mapErr(err, fmt.Sprintf("stat %q", key), key, condNone)
	}
	return sdk.ObjectInfo{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ETag:    trimETag(aws.ToString(out.ETag)),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

// List pages through ListObjectsV2, which returns keys in UTF-8 byte order.
// Keys are asked for URL-encoded, as S3 advises, because XML cannot carry
// every character a key may hold. Objects whose names are not valid keys
// under the store's path (such as the "dir/" markers of web consoles) are
// skipped: no key could name them.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	in := &s3.ListObjectsV2Input{
		Bucket:       aws.String(s.opt.bucket),
		Prefix:       aws.String(s.opt.prefix + prefix),
		EncodingType: types.EncodingTypeUrl,
	}
	if startAfter != "" {
		in.StartAfter = aws.String(s.opt.prefix + startAfter)
	}
	last := startAfter
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return s.mapErr(err, fmt.Sprintf("list prefix %q after %q", prefix, last), "", condNone)
		}
		for _, obj := range out.Contents {
			name := aws.ToString(obj.Key)
			if out.EncodingType == types.EncodingTypeUrl {
				if name, err = url.QueryUnescape(name); err != nil {
					return sdk.Errorf(sdk.Unknown, "s3: list prefix %q: server sent a badly encoded key %q: %v", prefix, aws.ToString(obj.Key), err)
				}
			}
			key, ok := strings.CutPrefix(name, s.opt.prefix)
			if !ok || !strings.HasPrefix(key, prefix) || sdk.ValidateKey(key) != nil {
				continue
			}
			if last != "" && key <= last {
				return sdk.Errorf(sdk.Unknown, "s3: list prefix %q at %s: the server listed %q after %q, not in byte order as S3 does; this server cannot be used as a replica", prefix, s.where, key, last)
			}
			last = key
			err := fn(sdk.ObjectInfo{
				Key:     key,
				Size:    aws.ToInt64(obj.Size),
				ETag:    trimETag(aws.ToString(obj.ETag)),
				ModTime: aws.ToTime(obj.LastModified),
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// maxDeleteBatch is the most keys one DeleteObjects request takes.
const maxDeleteBatch = 1000

// Delete removes keys with DeleteObjects, maxDeleteBatch at a time, and
// checks the per-key errors that a successful response may carry. A
// missing key is not an error in S3 either.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	seen := make(map[string]bool, len(keys))
	var ids []types.ObjectIdentifier
	for _, key := range keys {
		name, err := s.objectKey("delete", key)
		if err != nil {
			return err
		}
		if !seen[name] {
			seen[name] = true
			ids = append(ids, types.ObjectIdentifier{Key: aws.String(name)})
		}
	}
	if len(ids) == 1 {
		// One key needs neither the batch nor its Content-MD5, which not
		// every S3-compatible server gets right.
		_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.opt.bucket), Key: ids[0].Key})
		// S3 answers 204 for a missing key; some compatible servers 404.
		if err != nil && (httpStatus(err) != http.StatusNotFound || isCode(err, "NoSuchBucket")) {
			return s.mapErr(err, fmt.Sprintf("delete %q", keys[0]), "", condNone)
		}
		return nil
	}
	for len(ids) > 0 {
		batch := ids[:min(len(ids), maxDeleteBatch)]
		ids = ids[len(batch):]
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.opt.bucket),
			Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
		}, s3.WithAPIOptions(addContentMD5))
		if err != nil {
			return s.mapErr(err, fmt.Sprintf("delete %d keys", len(batch)), "", condNone)
		}
		for _, e := range out.Errors {
			code := aws.ToString(e.Code)
			if code == "NoSuchKey" {
				continue
			}
			key := strings.TrimPrefix(aws.ToString(e.Key), s.opt.prefix)
			return sdk.Errorf(codeOfS3(code, 0), "s3: delete %q at %s: %s: %s%s", key, s.where, code, aws.ToString(e.Message), s.hint(codeOfS3(code, 0)))
		}
	}
	return nil
}

// trimETag removes the quotes S3 puts around ETags, so that an ETag from a
// listing (where some servers omit them) equals one from HEAD.
func trimETag(etag string) string {
	return strings.Trim(etag, "\"")
}

// quoteETag is the If-Match header value for etag.
func quoteETag(etag string) string {
	return "\"" + trimETag(etag) + "\""
}
