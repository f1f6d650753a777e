package s3

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // Content-MD5 is what DeleteObjects asks for, not a security measure
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/sqlitereplicator/replicator/sdk"
)

// cond is the condition of the request whose error is being mapped: S3
// answers a failed condition with 412 (or 409 for a concurrent conflicting
// write) whichever condition it was, and only the caller knows which code
// that means.
type cond int

const (
	condNone cond = iota
	condAbsent
	condMatch
)

// mapErr turns an error of the SDK into an *sdk.Error with the right code
// and a message that says what was being done, where, and what to check.
// key, when not empty, is the object concerned. Secrets are scrubbed from
// the message. Context errors stay context errors, so that the plugin
// protocol reports a cancellation as one.
func (s *Store) mapErr(err error, what, key string, c cond) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		ctxErr := context.Canceled
		if errors.Is(err, context.DeadlineExceeded) {
			ctxErr = context.DeadlineExceeded
		}
		return fmt.Errorf("s3: %s: %w", what, ctxErr)
	}
	code, detail := s.classify(err, key, c)
	msg := fmt.Sprintf("s3: %s: %s%s", what, detail, s.hint(code))
	return &sdk.Error{Code: code, Msg: s.redact(msg), Err: err}
}

// classify finds the code of err and a short description of it.
func (s *Store) classify(err error, key string, c cond) (sdk.Code, string) {
	status := httpStatus(err)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		detail := fmt.Sprintf("%s answered %s (HTTP %d) for bucket %q", s.where, code, status, s.opt.bucket)
		if m := apiErr.ErrorMessage(); m != "" {
			detail += ": " + m
		}
		if region := bucketRegion(err); region != "" && region != s.opt.region {
			return sdk.InvalidArgument, fmt.Sprintf("%s; bucket %q is in region %s, not %s: set region: %s", detail, s.opt.bucket, region, s.opt.region, region)
		}
		switch {
		case code == "NoSuchBucket":
			return sdk.NotFound, fmt.Sprintf("bucket %q does not exist at %s (check bucket and region/endpoint)", s.opt.bucket, s.where)
		case status == http.StatusNotFound && key == "":
			return sdk.NotFound, fmt.Sprintf("bucket %q not found at %s (check bucket and region/endpoint): %s", s.opt.bucket, s.where, detail)
		case code == "NotImplemented" && c != condNone:
			return sdk.InvalidArgument, detail + "; the server does not support conditional writes: set conditional-writes: false (replication then runs without fencing)"
		case c == condAbsent && (status == http.StatusPreconditionFailed || status == http.StatusConflict):
			return sdk.AlreadyExists, fmt.Sprintf("%q exists (if-none-match: *): %s", key, detail)
		case c == condMatch && status == http.StatusPreconditionFailed:
			return sdk.PreconditionFailed, fmt.Sprintf("%q has another ETag (if-match): %s", key, detail)
		case c == condMatch && status == http.StatusNotFound && code != "NoSuchBucket" && code != "NoSuchUpload":
			// AWS answers If-Match on a missing key with 404 NoSuchKey.
			return sdk.PreconditionFailed, fmt.Sprintf("%q does not exist (if-match): %s", key, detail)
		case c == condMatch && status == http.StatusConflict:
			// A concurrent write conflicted; S3 asks to retry, which will
			// then see the new ETag or succeed.
			return sdk.Unavailable, fmt.Sprintf("%q was written concurrently (if-match): %s", key, detail)
		case code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" || code == "IllegalLocationConstraintException" ||
			status == http.StatusMovedPermanently || status == http.StatusTemporaryRedirect:
			return sdk.InvalidArgument, fmt.Sprintf("%s; the request went to the wrong region or endpoint (region %s): check region and endpoint", detail, s.opt.region)
		}
		if status == http.StatusNotFound && key != "" && code != "NoSuchUpload" {
			return sdk.NotFound, fmt.Sprintf("%q not found: %s", key, detail)
		}
		return codeOfS3(code, status), detail
	}
	if status != 0 {
		return codeOfS3("", status), fmt.Sprintf("%s answered HTTP %d: %v", s.where, status, err)
	}
	return classifyTransport(err, s.where)
}

// classifyTransport describes an error that got no HTTP response.
func classifyTransport(err error, where string) (sdk.Code, string) {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var verifyErr *tls.CertificateVerificationError
	if errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalidCert) || errors.As(err, &verifyErr) {
		return sdk.InvalidArgument, fmt.Sprintf("TLS certificate of %s not accepted: %v (install the server's CA, fix the endpoint's host name, or for a test server with a self-signed certificate set skip-verify: true)", where, innermost(err))
	}
	msg := err.Error()
	if strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "failed to refresh cached credentials") ||
		strings.Contains(msg, "no EC2 IMDS role found") || strings.Contains(msg, "anonymous credentials") {
		return sdk.PermissionDenied, fmt.Sprintf("no usable credentials for %s: %v", where, innermost(err))
	}
	var urlErr *url.Error
	var netErr net.Error
	if errors.As(err, &urlErr) || errors.As(err, &netErr) {
		return sdk.Unavailable, fmt.Sprintf("cannot reach %s: %v (check endpoint and that the server is up)", where, innermost(err))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return sdk.Unavailable, fmt.Sprintf("connection to %s dropped: %v", where, err)
	}
	return sdk.Unknown, msg
}

// innermost returns the most specific message in err's chain that still
// says something: "dial tcp 127.0.0.1:1: connect: connection refused"
// rather than the SDK's four layers of operation and retry wrapping.
func innermost(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr
	}
	return err
}

// codeOfS3 maps an S3 error code, or failing that an HTTP status, to an
// sdk.Code.
func codeOfS3(code string, status int) sdk.Code {
	switch code {
	case "NoSuchKey", "NotFound":
		return sdk.NotFound
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "AllAccessDisabled",
		"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "AccountProblem", "InvalidSecurity":
		return sdk.PermissionDenied
	case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed",
		"OperationAborted", "Throttling", "ThrottlingException", "TooManyRequests":
		return sdk.Unavailable
	case "PreconditionFailed":
		return sdk.PreconditionFailed
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return sdk.PermissionDenied
	case status == http.StatusNotFound:
		return sdk.NotFound
	case status == http.StatusPreconditionFailed:
		return sdk.PreconditionFailed
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500:
		return sdk.Unavailable
	case status >= 400:
		return sdk.InvalidArgument
	}
	return sdk.Unknown
}

// hint says what to check for an error of code c.
func (s *Store) hint(c sdk.Code) string {
	if c != sdk.PermissionDenied {
		return ""
	}
	who := "the credentials the default chain found (environment, profile, web identity, instance role), or set access-key-id/secret-access-key or profile"
	switch {
	case s.opt.accessKeyID != "":
		who = "access-key-id/secret-access-key"
	case s.opt.profile != "":
		who = fmt.Sprintf("the credentials of profile %q", s.opt.profile)
	}
	return fmt.Sprintf(" (check %s, and that they may read, write, list and delete in bucket %q)", who, s.opt.bucket)
}

// redact removes the secret settings from msg, in case a server or a layer
// of the SDK echoes them.
func (s *Store) redact(msg string) string {
	for _, secret := range []string{s.opt.secretAccessKey, s.opt.sessionToken} {
		if len(secret) >= 4 {
			msg = strings.ReplaceAll(msg, secret, "[redacted]")
		}
	}
	return msg
}

// isCode reports whether err is an S3 error with the given code.
func isCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}

// httpStatus returns the HTTP status of the response that caused err, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// bucketRegion returns the x-amz-bucket-region header of the response that
// caused err: AWS names the bucket's region there when a request went to
// the wrong one.
func bucketRegion(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.Header.Get("X-Amz-Bucket-Region")
	}
	return ""
}

// addContentMD5 adds a Content-MD5 header to a DeleteObjects request. S3
// documents it as required; the SDK now sends a CRC32 checksum instead,
// which AWS accepts but several S3-compatible servers reject with
// "Missing required header for this request: Content-MD5".
func addContentMD5(stack *middleware.Stack) error {
	return stack.Build.Add(middleware.BuildMiddlewareFunc("ReplicatorContentMD5",
		func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			req, ok := in.Request.(*smithyhttp.Request)
			if !ok || req.GetStream() == nil {
				return next.HandleBuild(ctx, in)
			}
			body, err := io.ReadAll(req.GetStream())
			if err != nil {
				return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("read request body for Content-MD5: %w", err)
			}
			req, err = req.SetStream(bytes.NewReader(body))
			if err != nil {
				return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("reset request body after Content-MD5: %w", err)
			}
			sum := md5.Sum(body) //nolint:gosec // see import
			req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
			in.Request = req
			return next.HandleBuild(ctx, in)
		}), middleware.After)
}
