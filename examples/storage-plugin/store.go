package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Store is the hashdir backend: a directory of objects stored under the
// sha256 of their key.
//
// Layout under the root directory:
//
//	objects/ab/ab12...ef   one file per object, named by the hex sha256 of
//	                       its key, in a subdirectory of its first two digits
//	tmp/                   puts in progress (same file system, so a rename
//	                       into objects/ is atomic)
//	lock                   serialises if-match puts across processes
//
// An object file starts with a header (magic, ETag, key) followed by the
// data. Hashing keys means any valid key maps to a short, safe file name,
// and a key that is a path prefix of another ("a" and "a/b") is no problem,
// unlike in a tree that mirrors the keys. The price is that List reads
// every header and sorts; that is fine for the thousands of objects a
// replica holds, not for millions.
type Store struct {
	root string
	mu   sync.Mutex // serialises if-match puts within the process
}

const (
	magic     = "HDR1"
	etagBytes = 16 // the ETag is 16 random bytes, kept as 32 hex digits
)

// Open is the plugin's sdk.OpenFunc: setting "path" is the root
// directory, created if missing.
func Open(_ context.Context, settings map[string]string) (sdk.Storage, error) {
	for k := range settings {
		if k != "path" {
			return nil, sdk.Errorf(sdk.InvalidArgument, "hashdir: unknown setting %q (hashdir takes only \"path\")", k)
		}
	}
	dir := settings["path"]
	if dir == "" {
		return nil, sdk.Errorf(sdk.InvalidArgument, "hashdir: setting \"path\" is required: the directory to store objects in")
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, sdk.Errorf(sdk.InvalidArgument, "hashdir: path %q: %w", dir, err)
	}
	for _, d := range []string{"objects", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("hashdir: %w", err)
		}
	}
	return &Store{root: root}, nil
}

// Capabilities: a hard link fails when its name exists, which makes an
// if-absent put atomic; if-match puts are atomic under a lock.
func (s *Store) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{IfAbsent: true, IfMatch: true}
}

// Close does nothing: no resources are held between calls.
func (s *Store) Close() error { return nil }

// file returns the path of key's object file.
func (s *Store) file(key string) (string, error) {
	if err := sdk.ValidateKey(key); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(s.root, "objects", h[:2], h), nil
}

// header is the start of an object file.
type header struct {
	etag string
	key  string
	size int // bytes of header in the file
}

func encodeHeader(etag, key string) []byte {
	b := make([]byte, 0, len(magic)+2*etagBytes+2+len(key))
	b = append(b, magic...)
	b = append(b, etag...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(key)))
	return append(b, key...)
}

func readHeader(r io.Reader) (header, error) {
	fixed := make([]byte, len(magic)+2*etagBytes+2)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return header{}, fmt.Errorf("read object header: %w", err)
	}
	if string(fixed[:len(magic)]) != magic {
		return header{}, errors.New("not a hashdir object file")
	}
	n := int(binary.BigEndian.Uint16(fixed[len(fixed)-2:]))
	key := make([]byte, n)
	if _, err := io.ReadFull(r, key); err != nil {
		return header{}, fmt.Errorf("read object header: %w", err)
	}
	return header{etag: string(fixed[len(magic) : len(magic)+2*etagBytes]), key: string(key), size: len(fixed) + n}, nil
}

// open opens key's object file and reads its header; a missing file is
// NotFound.
func (s *Store) open(key string) (*os.File, header, error) {
	p, err := s.file(key)
	if err != nil {
		return nil, header{}, err
	}
	f, err := os.Open(p)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, header{}, sdk.Errorf(sdk.NotFound, "%s not found", key)
	}
	if err != nil {
		return nil, header{}, err
	}
	h, err := readHeader(f)
	if err == nil && h.key != key {
		err = fmt.Errorf("hashdir: %s holds key %q, not %q", p, h.key, key)
	}
	if err != nil {
		f.Close()
		return nil, header{}, err
	}
	return f, h, nil
}

func info(h header, fi iofs.FileInfo) sdk.ObjectInfo {
	return sdk.ObjectInfo{Key: h.key, Size: fi.Size() - int64(h.size), ETag: h.etag, ModTime: fi.ModTime()}
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	dst, err := s.file(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	var rnd [etagBytes]byte
	_, _ = rand.Read(rnd[:])
	etag := hex.EncodeToString(rnd[:])
	tmp := filepath.Join(s.root, "tmp", etag)
	if err := writeFile(ctx, tmp, encodeHeader(etag, key), r); err != nil {
		return sdk.ObjectInfo{}, err
	}
	defer os.Remove(tmp) // a no-op once renamed; the extra link after a Link
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return sdk.ObjectInfo{}, err
	}
	switch {
	case opts.IfAbsent:
		if err := os.Link(tmp, dst); errors.Is(err, iofs.ErrExist) {
			return sdk.ObjectInfo{}, sdk.Errorf(sdk.AlreadyExists, "%s exists", key)
		} else if err != nil {
			return sdk.ObjectInfo{}, err
		}
	case opts.IfMatch != "":
		if err := s.renameIfMatch(tmp, key, dst, opts.IfMatch); err != nil {
			return sdk.ObjectInfo{}, err
		}
	default:
		if err := os.Rename(tmp, dst); err != nil {
			return sdk.ObjectInfo{}, err
		}
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return sdk.ObjectInfo{}, err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	return info(header{etag: etag, key: key, size: len(encodeHeader(etag, key))}, fi), nil
}

// writeFile writes head and then r to a new file at path and fsyncs it;
// on any failure, or when ctx ends, it removes the file.
func writeFile(ctx context.Context, path string, head []byte, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(head)
	if err == nil {
		_, err = io.Copy(f, ctxReader{ctx, r})
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("hashdir: write object: %w", err)
	}
	return nil
}

func (s *Store) renameIfMatch(tmp, key, dst, etag string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lock, err := os.OpenFile(filepath.Join(s.root, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	f, h, err := s.open(key)
	if sdk.CodeOf(err) == sdk.NotFound {
		return sdk.Errorf(sdk.PreconditionFailed, "%s does not exist (if-match %s)", key, etag)
	}
	if err != nil {
		return err
	}
	f.Close()
	if h.etag != etag {
		return sdk.Errorf(sdk.PreconditionFailed, "%s has ETag %s, not %s", key, h.etag, etag)
	}
	return os.Rename(tmp, dst)
}

func (s *Store) Get(_ context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, sdk.Errorf(sdk.InvalidArgument, "get %s: negative offset %d", key, offset)
	}
	f, h, err := s.open(key)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(int64(h.size)+offset, io.SeekStart); err != nil {
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

func (s *Store) Stat(_ context.Context, key string) (sdk.ObjectInfo, error) {
	f, h, err := s.open(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	return info(h, fi), nil
}

// List reads the header of every object, keeps the matching keys and
// reports them in order. Objects deleted meanwhile are skipped.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	var infos []sdk.ObjectInfo
	objects := filepath.Join(s.root, "objects")
	err := filepath.WalkDir(objects, func(p string, d iofs.DirEntry, err error) error {
		if errors.Is(err, iofs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := os.Open(p)
		if errors.Is(err, iofs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		h, err := readHeader(f)
		if err != nil {
			return fmt.Errorf("hashdir: %s: %w", p, err)
		}
		if !strings.HasPrefix(h.key, prefix) || (startAfter != "" && h.key <= startAfter) {
			return nil
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		infos = append(infos, info(h, fi))
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(infos, func(a, b sdk.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, inf := range infos {
		if err := fn(inf); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the objects' files; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := s.file(key)
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("hashdir: delete %s: %w", key, err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// ctxReader stops a copy when ctx ends.
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
