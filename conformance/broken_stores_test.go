package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
)

// The broken stores. Each embeds the memstore and overrides one method.

// listDirOrder lists as a walk of directories in name order would: "a/b"
// before "a-c".
type listDirOrder struct{ sdk.Storage }

func (s listDirOrder) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	var infos []sdk.ObjectInfo
	if err := s.Storage.List(ctx, prefix, startAfter, func(i sdk.ObjectInfo) error { infos = append(infos, i); return nil }); err != nil {
		return err
	}
	slices.SortFunc(infos, func(a, b sdk.ObjectInfo) int {
		return slices.Compare(strings.Split(a.Key, "/"), strings.Split(b.Key, "/"))
	})
	for _, i := range infos {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}

// listFirstPage forgets to ask for the pages after the first.
type listFirstPage struct{ sdk.Storage }

func (s listFirstPage) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	n := 0
	err := s.Storage.List(ctx, prefix, startAfter, func(i sdk.ObjectInfo) error {
		if n++; n > 1000 {
			return io.EOF
		}
		return fn(i)
	})
	if err == io.EOF {
		return nil
	}
	return err
}

// listInclusive lists startAfter itself.
type listInclusive struct{ sdk.Storage }

func (s listInclusive) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	if startAfter != "" && strings.HasPrefix(startAfter, prefix) {
		if info, err := s.Stat(ctx, startAfter); err == nil {
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return s.Storage.List(ctx, prefix, startAfter, fn)
}

// listPrefixDir takes the prefix "p/a" for the directory "p/a/".
type listPrefixDir struct{ sdk.Storage }

func (s listPrefixDir) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		if info, err := s.Stat(ctx, prefix); err == nil && prefix > startAfter {
			if err := fn(info); err != nil {
				return err
			}
		}
		prefix += "/"
	}
	return s.Storage.List(ctx, prefix, startAfter, fn)
}

// listNoStop ignores the callback's error.
type listNoStop struct{ sdk.Storage }

func (s listNoStop) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	return s.Storage.List(ctx, prefix, startAfter, func(i sdk.ObjectInfo) error { _ = fn(i); return nil })
}

// getStrictRange refuses ranges that do not lie within the object, as an
// HTTP server answering 416 would.
type getStrictRange struct{ sdk.Storage }

func (s getStrictRange) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if offset >= info.Size || (length >= 0 && offset+length > info.Size) {
		return nil, sdk.Errorf(sdk.InvalidArgument, "get %q: range not satisfiable", key)
	}
	return s.Storage.Get(ctx, key, offset, length)
}

// getLazy opens the object on the first Read.
type getLazy struct{ sdk.Storage }

func (s getLazy) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	return &lazyReader{open: func() (io.ReadCloser, error) { return s.Storage.Get(ctx, key, offset, length) }}, nil
}

type lazyReader struct {
	open func() (io.ReadCloser, error)
	rc   io.ReadCloser
}

func (r *lazyReader) Read(p []byte) (int, error) {
	if r.rc == nil {
		rc, err := r.open()
		if err != nil {
			return 0, err
		}
		r.rc = rc
	}
	return r.rc.Read(p)
}

func (r *lazyReader) Close() error {
	if r.rc == nil {
		return nil
	}
	return r.rc.Close()
}

// getChunked reads the object in ranged requests of 64 KiB, each of which
// sees the version current at its time.
type getChunked struct{ sdk.Storage }

func (s getChunked) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	end := info.Size
	if length >= 0 {
		end = min(end, offset+length)
	}
	var buf []byte
	next := offset
	return &lazyReader{open: func() (io.ReadCloser, error) {
		return io.NopCloser(readerFunc(func(p []byte) (int, error) {
			for len(buf) == 0 {
				if next >= end {
					return 0, io.EOF
				}
				n := min(64<<10, end-next)
				rc, err := s.Storage.Get(ctx, key, next, n)
				if err != nil {
					return 0, err
				}
				buf, err = io.ReadAll(rc)
				rc.Close()
				if err != nil {
					return 0, err
				}
				next += n
			}
			n := copy(p, buf)
			buf = buf[n:]
			return n, nil
		})), nil
	}}, nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// statDir reports a key that is a directory of other keys as an empty
// object.
type statDir struct{ sdk.Storage }

func (s statDir) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	info, err := s.Storage.Stat(ctx, key)
	if errors.Is(err, sdk.ErrNotFound) {
		found := false
		_ = s.List(ctx, key+"/", "", func(sdk.ObjectInfo) error { found = true; return io.EOF })
		if found {
			return sdk.ObjectInfo{Key: key, ETag: "dir", ModTime: time.Now()}, nil
		}
	}
	return info, err
}

// etagPerKey derives ETags from the key, so they never change.
type etagPerKey struct{ sdk.Storage }

func (s etagPerKey) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	info, err := s.Storage.Put(ctx, key, r, opts)
	info.ETag = "etag-of-" + key
	return info, err
}

func (s etagPerKey) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	info, err := s.Storage.Stat(ctx, key)
	info.ETag = "etag-of-" + key
	return info, err
}

// putInPlace writes the object as the data arrives, as a store writing
// straight to the final file would, and leaves what it wrote on failure.
type putInPlace struct{ sdk.Storage }

func (s putInPlace) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	if opts != (sdk.PutOptions{}) {
		return s.Storage.Put(ctx, key, r, opts)
	}
	var data []byte
	buf := make([]byte, 1<<20)
	for {
		n, err := io.ReadFull(r, buf)
		data = append(data, buf[:n]...)
		if n > 0 {
			if _, perr := s.Storage.Put(context.WithoutCancel(ctx), key, bytes.NewReader(data), opts); perr != nil {
				return sdk.ObjectInfo{}, perr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return sdk.ObjectInfo{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return sdk.ObjectInfo{}, err
	}
	return s.Storage.Put(ctx, key, bytes.NewReader(data), opts)
}

// putNoCancel finishes a Put whatever happens to ctx.
type putNoCancel struct{ sdk.Storage }

func (s putNoCancel) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	return s.Storage.Put(context.WithoutCancel(ctx), key, r, opts)
}

// putShortOK takes io.ErrUnexpectedEOF from the reader for the end of the
// data, as a loop around io.ReadFull easily does.
type putShortOK struct{ sdk.Storage }

func (s putShortOK) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	return s.Storage.Put(ctx, key, readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return n, err
	}), opts)
}

// putCleanKey "repairs" keys with path.Clean instead of refusing them.
type putCleanKey struct{ sdk.Storage }

func (s putCleanKey) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	if clean := strings.TrimPrefix(path.Clean(key), "/"); sdk.ValidateKey(clean) == nil {
		key = clean
	}
	return s.Storage.Put(ctx, key, r, opts)
}

// putDropConditions treats every Put as unconditional.
type putDropConditions struct{ sdk.Storage }

func (s putDropConditions) Put(ctx context.Context, key string, r io.Reader, _ sdk.PutOptions) (sdk.ObjectInfo, error) {
	return s.Storage.Put(ctx, key, r, sdk.PutOptions{})
}

// putRacyIfAbsent checks for the key, then puts it, in two steps.
type putRacyIfAbsent struct{ sdk.Storage }

func (s putRacyIfAbsent) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	if opts.IfAbsent {
		if _, err := s.Stat(ctx, key); err == nil {
			return sdk.ObjectInfo{}, sdk.Errorf(sdk.AlreadyExists, "put %q: exists", key)
		}
		time.Sleep(20 * time.Millisecond) // the upload
		opts.IfAbsent = false
	}
	return s.Storage.Put(ctx, key, r, opts)
}

// deleteStrict fails on missing keys, as a bare os.Remove would.
type deleteStrict struct{ sdk.Storage }

func (s deleteStrict) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if _, err := s.Stat(ctx, k); err != nil {
			return err
		}
		if err := s.Storage.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// deleteRecursive removes keys as directories too, as os.RemoveAll would.
type deleteRecursive struct{ sdk.Storage }

func (s deleteRecursive) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		var under []string
		if err := s.List(ctx, k+"/", "", func(i sdk.ObjectInfo) error { under = append(under, i.Key); return nil }); err != nil {
			return err
		}
		if err := s.Storage.Delete(ctx, append(under, k)...); err != nil {
			return err
		}
	}
	return nil
}

// deleteTruncated sends one batch of at most 1000 keys and drops the rest.
type deleteTruncated struct{ sdk.Storage }

func (s deleteTruncated) Delete(ctx context.Context, keys ...string) error {
	return s.Storage.Delete(ctx, keys[:min(len(keys), 1000)]...)
}
