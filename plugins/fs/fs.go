// Package fs is the local-directory storage backend: a directory tree as an
// object store. It is also the reference for what the storage contract asks
// of a backend that has no native objects.
//
// Objects are files at their key's path under the root. Puts write a
// temporary file in <root>/.replicator-tmp, fsync it, and move it into
// place with rename (unconditional), link (if absent) or rename under a lock
// (if match), then fsync the directory, so a crash leaves the old object or
// the new one, never a torn file. Directories left empty by a delete are
// removed. Keys are validated before any path is built, so no key names a
// path outside the root.
package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/sqlitereplicator/replicator/sdk"
)

// tmpDir is the directory under the root that holds puts in progress; it
// is on the same file system as the objects (so rename is atomic) and is
// never listed.
const tmpDir = ".replicator-tmp"

// Store is a directory used as an object store.
type Store struct {
	root string
	// mu serialises if-match puts within this process; a lock file does so
	// across processes.
	mu sync.Mutex
}

// Open opens the store described by settings: "path" is the root
// directory, created if missing.
func Open(_ context.Context, settings map[string]string) (sdk.Storage, error) {
	for k := range settings {
		if k != "path" {
			return nil, sdk.Errorf(sdk.InvalidArgument, "fs: unknown setting %q (the fs backend takes only \"path\")", k)
		}
	}
	root := settings["path"]
	if root == "" {
		return nil, sdk.Errorf(sdk.InvalidArgument, "fs: setting \"path\" is required: the directory to replicate into")
	}
	return New(root)
}

// New returns a Store rooted at dir, creating the directory if needed.
func New(dir string) (*Store, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, sdk.Errorf(sdk.InvalidArgument, "fs: path %q: %w", dir, err)
	}
	// The directory is created by the first put, so that reading from a
	// replica that does not exist (a restore, a listing) creates nothing.
	if fi, err := os.Stat(root); err == nil && !fi.IsDir() {
		return nil, sdk.Errorf(sdk.InvalidArgument, "fs: path %s is not a directory: cannot create %s", root, root)
	} else if err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return nil, fmt.Errorf("fs: path %s: %w", root, err)
	}
	return &Store{root: root}, nil
}

var _ sdk.LocalFiler = (*Store)(nil)

// Capabilities: link(2) gives an atomic if-absent; if-match is atomic
// under the store's lock.
func (s *Store) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{IfAbsent: true, IfMatch: true}
}

// Close does nothing: the store holds no resources between calls.
func (s *Store) Close() error { return nil }

func (s *Store) path(key string) (string, error) {
	if err := sdk.ValidateKey(key); err != nil {
		return "", err
	}
	if key == tmpDir || strings.HasPrefix(key, tmpDir+"/") {
		return "", sdk.Errorf(sdk.InvalidArgument, "fs: key %q is in the directory reserved for puts in progress", key)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	dst, err := s.path(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	tmp, err := s.writeTemp(ctx, r)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	defer os.Remove(tmp) // a no-op once the file was moved into place
	if err := ctx.Err(); err != nil {
		return sdk.ObjectInfo{}, err
	}
	created, err := mkdirParents(s.root, filepath.Dir(dst))
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	switch {
	case opts.IfAbsent:
		err = retryMissingDir(s.root, dst, func() error { return os.Link(tmp, dst) })
		if errors.Is(err, iofs.ErrExist) {
			return sdk.ObjectInfo{}, sdk.Errorf(sdk.AlreadyExists, "%s exists", key)
		}
	case opts.IfMatch != "":
		err = s.renameIfMatch(tmp, dst, key, opts.IfMatch)
	default:
		err = retryMissingDir(s.root, dst, func() error { return os.Rename(tmp, dst) })
	}
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	if err := syncDirs(s.root, filepath.Dir(dst), created); err != nil {
		return sdk.ObjectInfo{}, err
	}
	return s.Stat(ctx, key)
}

// writeTemp copies r into a new fsynced temporary file and returns its path.
func (s *Store) writeTemp(ctx context.Context, r io.Reader) (string, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	if err := os.MkdirAll(filepath.Join(s.root, tmpDir), 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", s.root, err)
	}
	tmp := filepath.Join(s.root, tmpDir, hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("create temporary file: %w", err)
	}
	_, err = io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("write temporary file: %w", err)
	}
	return tmp, nil
}

func (s *Store) renameIfMatch(tmp, dst, key, etag string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := lockFile(filepath.Join(s.root, tmpDir, "lock"))
	if err != nil {
		return err
	}
	defer unlock()
	fi, err := os.Stat(dst)
	if errors.Is(err, iofs.ErrNotExist) {
		return sdk.Errorf(sdk.PreconditionFailed, "%s does not exist (if-match %s)", key, etag)
	}
	if err != nil {
		return err
	}
	if got := etagOf(fi); got != etag {
		return sdk.Errorf(sdk.PreconditionFailed, "%s has etag %s, not %s", key, got, etag)
	}
	return os.Rename(tmp, dst)
}

func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, sdk.Errorf(sdk.InvalidArgument, "get %s: negative offset %d", key, offset)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, notFound(key, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = sdk.Errorf(sdk.NotFound, "%s is not an object", key)
	}
	if err == nil {
		_, err = f.Seek(offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	if length < 0 {
		return f, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, length), f}, nil
}

// LocalPath names the file that holds key's object, so that a host on
// this machine reads it directly rather than through the plugin's stream
// (sdk.LocalFiler). Every put renames or links a whole new file into
// place, so a reader holding the old file open keeps a consistent version.
// Keys in the reserved directory (puts in progress, the lock) are refused
// by the same key-to-path mapping Get uses.
func (s *Store) LocalPath(_ context.Context, key string) (string, error) {
	p, err := s.path(key)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", notFound(key, err)
	}
	if !fi.Mode().IsRegular() {
		return "", sdk.Errorf(sdk.NotFound, "%s is not an object", key)
	}
	return p, nil
}

func (s *Store) Stat(_ context.Context, key string) (sdk.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return sdk.ObjectInfo{}, notFound(key, err)
	}
	if !fi.Mode().IsRegular() {
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.NotFound, "%s is not an object", key)
	}
	return info(key, fi), nil
}

func (s *Store) Delete(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := s.path(key)
		if err != nil {
			return err
		}
		// Only objects are deleted: a directory at the key is a prefix of
		// other keys, not an object, and a file where a parent directory
		// would be means the key cannot exist.
		fi, err := os.Lstat(p)
		if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || (err == nil && !fi.Mode().IsRegular()) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		pruneEmptyDirs(s.root, filepath.Dir(p))
	}
	return nil
}

func info(key string, fi iofs.FileInfo) sdk.ObjectInfo {
	return sdk.ObjectInfo{Key: key, Size: fi.Size(), ETag: etagOf(fi), ModTime: fi.ModTime()}
}

// etagOf identifies a file version: every put creates a new file, so its
// inode, size and modification time change together.
func etagOf(fi iofs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%x-%x-%x", ino, fi.Size(), fi.ModTime().UnixNano())
}

func notFound(key string, err error) error {
	if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return sdk.Errorf(sdk.NotFound, "%s not found", key)
	}
	return err
}

// ctxReader stops a copy when its context is cancelled.
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
