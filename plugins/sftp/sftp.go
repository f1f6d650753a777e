// Package sftp is the SFTP storage backend: a directory on an SSH server,
// reached with github.com/pkg/sftp, used as an object store.
//
// Objects are files at their key's path under the root directory. A put
// writes a temporary file in <root>/.replicator-tmp, flushes it to disk
// with fsync@openssh.com when the server offers it, and moves it into place
// with posix-rename@openssh.com (plain SFTPv3 rename refuses to replace a
// file on OpenSSH), or with hardlink@openssh.com for an if-absent put,
// which fails when the target exists just as link(2) does. SFTP has no
// atomic compare-and-swap, so if-match puts are not offered. Directories
// left empty by a delete are removed.
//
// The server's host key is checked by default, against a known_hosts file
// or a pinned fingerprint. A dropped connection fails the call that met it
// with Unavailable, and the next call dials again.
package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"

	"github.com/sqlitereplicator/replicator/sdk"
)

// tmpDir is the directory under the root that holds puts in progress: on
// the same file system as the objects, so that rename is atomic, and never
// listed.
const tmpDir = ".replicator-tmp"

// staleTemp is the age after which a temporary file is taken to be left
// over from a put whose process or connection died, and removed at Open.
const staleTemp = 24 * time.Hour

// Store is a directory on an SFTP server used as an object store.
type Store struct {
	cfg  *config
	pool *pool
	root string // absolute path on the server, resolved at Open
	tmp  string
	caps sdk.Capabilities

	// What the server offers, learnt at Open.
	posixRename, fsync bool
	noDirSync          atomic.Bool // set when the server cannot sync a directory

	// orphans are temporary files a put could not remove because its
	// connection failed; the next put removes them.
	orphanMu sync.Mutex
	orphans  []string
}

// Open connects to the server described by settings (see the package
// documentation and docs/backends.md), checks that the root directory
// exists, and creates the directory for puts in progress.
func Open(ctx context.Context, settings map[string]string) (sdk.Storage, error) {
	cfg, err := parseConfig(settings)
	if err != nil {
		return nil, err
	}
	sshCfg, err := cfg.clientConfig()
	if err != nil {
		return nil, err
	}
	if cfg.insecure {
		slog.Warn("sftp: host key checking is disabled (insecure-skip-host-key-check: true): anyone who can intercept the connection can read and alter the replica; set known-hosts or host-key-fingerprint instead",
			"host", cfg.addr(), "user", cfg.user)
	}
	s := &Store{cfg: cfg, pool: newPool(cfg, sshCfg)}
	if err := s.init(ctx); err != nil {
		s.pool.close()
		return nil, err
	}
	return s, nil
}

// init resolves the root, checks it, and learns the server's extensions.
func (s *Store) init(ctx context.Context) error {
	return s.pool.with(ctx, func(ss *session) error {
		root, err := ss.c.RealPath(s.cfg.root)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return ss.fail(err, "resolve \"path\" %s on %s", s.cfg.root, s.cfg.addr())
		}
		if err != nil {
			root = s.cfg.root
		}
		fi, err := ss.c.Stat(root)
		if errors.Is(err, os.ErrNotExist) {
			// Like a prefix in an object store, the directory need not
			// exist yet: create it (relative paths start in the login
			// directory).
			if merr := ss.c.MkdirAll(root); merr != nil {
				return sdk.Errorf(sdk.InvalidArgument, "sftp: cannot create directory %s (setting \"path\") on %s: %v", root, s.cfg.who(), merr)
			}
			fi, err = ss.c.Stat(root)
		}
		switch {
		case err != nil:
			return ss.fail(err, "check directory %s (setting \"path\")", root)
		case !fi.IsDir():
			return sdk.Errorf(sdk.InvalidArgument, "sftp: %s (setting \"path\") on %s is not a directory", root, s.cfg.addr())
		}
		s.root, s.tmp = root, path.Join(root, tmpDir)
		if err := ss.c.MkdirAll(s.tmp); err != nil {
			return ss.fail(err, "create directory %s for puts in progress", s.tmp)
		}
		_, s.posixRename = ss.c.HasExtension("posix-rename@openssh.com")
		_, s.fsync = ss.c.HasExtension("fsync@openssh.com")
		_, link := ss.c.HasExtension("hardlink@openssh.com")
		s.caps = sdk.Capabilities{IfAbsent: link}
		s.removeStale(ss)
		return nil
	})
}

// removeStale removes temporary files left by puts that died long ago.
func (s *Store) removeStale(ss *session) {
	entries, err := ss.c.ReadDir(s.tmp)
	if err != nil {
		return
	}
	for _, fi := range entries {
		if fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleTemp {
			_ = ss.c.Remove(path.Join(s.tmp, fi.Name()))
		}
	}
}

// Capabilities: if-absent when the server offers hardlink@openssh.com;
// never if-match, which SFTP cannot make atomic across clients.
func (s *Store) Capabilities() sdk.Capabilities { return s.caps }

// Close closes the connection; calls in progress fail.
func (s *Store) Close() error {
	s.pool.close()
	return nil
}

// under is the prefix of every path below the root.
func (s *Store) under() string { return strings.TrimSuffix(s.root, "/") + "/" }

// path returns the server path of key, after validating the key so that
// no key names a path outside the root.
func (s *Store) path(key string) (string, error) {
	if err := sdk.ValidateKey(key); err != nil {
		return "", err
	}
	if key == tmpDir || strings.HasPrefix(key, tmpDir+"/") {
		return "", sdk.Errorf(sdk.InvalidArgument, "sftp: key %q is in the directory reserved for puts in progress", key)
	}
	return path.Join(s.root, key), nil
}

// Get opens the file and checks it is one before returning, so that a
// missing key fails Get itself. The reader shares the session's
// connection without holding an operation slot, so open readers never
// block other calls.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, sdk.Errorf(sdk.InvalidArgument, "sftp: get %s: negative offset %d", key, offset)
	}
	var rc io.ReadCloser
	err = s.pool.with(ctx, func(ss *session) error {
		f, err := ss.c.Open(p)
		if err != nil {
			return ss.fail(err, "get %s", key)
		}
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = sdk.Errorf(sdk.NotFound, "sftp: get %s: not found (a directory)", key)
		}
		if err == nil {
			_, err = f.Seek(offset, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return ss.fail(err, "get %s", key)
		}
		var r io.Reader = f
		if length >= 0 {
			r = io.LimitReader(f, length)
		}
		rc = &objectReader{r: r, f: f, ss: ss, key: key}
		return nil
	})
	return rc, err
}

// objectReader maps read errors to Codes: a connection lost mid-read is
// Unavailable.
type objectReader struct {
	r   io.Reader
	f   *sftp.File
	ss  *session
	key string
}

func (o *objectReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF {
		err = o.ss.fail(err, "read %s", o.key)
	}
	return n, err
}

func (o *objectReader) Close() error {
	if err := o.f.Close(); err != nil && o.ss.alive() {
		return o.ss.fail(err, "close %s", o.key)
	}
	return nil
}

// Stat follows a symbolic link at key; a directory is not an object.
func (s *Store) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	var info sdk.ObjectInfo
	err = s.pool.with(ctx, func(ss *session) error {
		fi, err := ss.c.Stat(p)
		if err != nil {
			return ss.fail(err, "stat %s", key)
		}
		if !fi.Mode().IsRegular() {
			return sdk.Errorf(sdk.NotFound, "sftp: stat %s: not found (a directory)", key)
		}
		info = objectInfo(key, fi)
		return nil
	})
	return info, err
}

// Delete removes the keys, up to cfg.concurrency at a time, and prunes the
// directories they leave empty.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	paths := make([]string, len(keys))
	for i, key := range keys {
		p, err := s.path(key)
		if err != nil {
			return err
		}
		paths[i] = p
	}
	next := make(chan int)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for range min(s.cfg.concurrency, len(keys)) {
		wg.Go(func() {
			for i := range next {
				errs[i] = s.pool.with(ctx, func(ss *session) error { return s.deleteOne(ss, keys[i], paths[i]) })
			}
		})
	}
	for i := range keys {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sftp: delete: %w", err)
	}
	return errors.Join(errs...)
}

func (s *Store) deleteOne(ss *session, key, p string) error {
	if err := ss.c.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		// A directory is no object: there is nothing to delete.
		if fi, serr := ss.c.Lstat(p); serr != nil || !fi.IsDir() {
			return ss.fail(err, "delete %s", key)
		}
	}
	for d := path.Dir(p); strings.HasPrefix(d, s.under()); d = path.Dir(d) {
		if ss.c.RemoveDirectory(d) != nil {
			break
		}
	}
	return nil
}

func objectInfo(key string, fi os.FileInfo) sdk.ObjectInfo {
	return sdk.ObjectInfo{Key: key, Size: fi.Size(), ETag: etag(fi), ModTime: fi.ModTime()}
}

// etag identifies a file version by what SFTPv3 reports (no inode, whole
// seconds); Put keeps it distinct from the version it replaces.
func etag(fi os.FileInfo) string {
	return fmt.Sprintf("%x-%x", fi.ModTime().Unix(), fi.Size())
}
