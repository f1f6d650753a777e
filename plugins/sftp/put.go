package sftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Put writes a temporary file and moves it into place (see the package
// documentation), so that the key holds the old object or the new one
// whole, never a part, whatever fails.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	dst, err := s.path(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	switch {
	case opts.IfMatch != "":
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.InvalidArgument, "sftp: put %s: if-match is not supported: SFTP has no atomic compare-and-swap, so the store does not declare IfMatch", key)
	case opts.IfAbsent && !s.caps.IfAbsent:
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.InvalidArgument, "sftp: put %s: if-absent needs the server's hardlink@openssh.com extension, which %s does not offer", key, s.cfg.addr())
	}
	var info sdk.ObjectInfo
	err = s.pool.with(ctx, func(ss *session) error {
		s.removeOrphans(ss)
		// The current object's attributes are fetched while the data is
		// written, saving a round trip; see distinctETag.
		current := make(chan os.FileInfo, 1)
		if !opts.IfAbsent {
			go func() {
				fi, err := ss.c.Lstat(dst)
				if err != nil {
					fi = nil
				}
				current <- fi
			}()
		}
		tmp, fi, err := s.writeTemp(ctx, ss, key, r)
		if err != nil {
			return err
		}
		renamed := false
		// After a link, and after any failure, the temporary file goes.
		defer func() {
			if renamed {
				return
			}
			if err := ss.c.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.addOrphan(tmp)
			}
		}()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sftp: put %s: %w", key, err)
		}
		if opts.IfAbsent {
			err = s.link(ss, key, tmp, dst)
		} else {
			fi, err = s.replace(ss, key, tmp, dst, fi, <-current)
			renamed = err == nil
		}
		if err != nil {
			return err
		}
		info = objectInfo(key, fi)
		return nil
	})
	return info, err
}

// writeTemp copies r into a new temporary file, flushed to disk, and
// returns its path and attributes (which the object keeps once moved).
func (s *Store) writeTemp(ctx context.Context, ss *session, key string, r io.Reader) (string, os.FileInfo, error) {
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(s.tmp, hex.EncodeToString(rnd[:]))
	f, err := ss.c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if errors.Is(err, os.ErrNotExist) { // someone removed the directory
		if err = ss.c.MkdirAll(s.tmp); err == nil {
			f, err = ss.c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		}
	}
	if err != nil {
		return "", nil, ss.fail(err, "put %s: create temporary file %s", key, tmp)
	}
	err = copyInto(f, ctxReader{ctx: ctx, r: r})
	if err == nil && s.fsync {
		err = f.Sync()
	}
	var fi os.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return tmp, fi, nil
	}
	if rerr := ss.c.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		s.addOrphan(tmp)
	}
	var re readError
	if errors.As(err, &re) {
		return "", nil, fmt.Errorf("sftp: put %s: reading the data: %w", key, re.err)
	}
	return "", nil, ss.fail(err, "put %s: write temporary file %s", key, tmp)
}

// smallObject is how much copyInto reads before choosing how to write.
const smallObject = 64 << 10

// copyInto writes everything r returns to f. An object that fits in
// smallObject bytes (most are small) is written in one call; a larger one
// is streamed with many writes in flight, which is what makes SFTP fast
// over a slow link, but costs a pool of goroutines per call.
func copyInto(f *sftp.File, r io.Reader) error {
	head := make([]byte, smallObject)
	n, err := io.ReadFull(r, head)
	// ReadFull's own io.ErrUnexpectedEOF means r ended early; r's errors
	// are wrapped in readError, so == tells them apart.
	switch {
	case err == io.EOF:
		return nil // empty
	case err == io.ErrUnexpectedEOF:
		_, err = f.Write(head[:n])
		return err
	case err != nil:
		return err
	}
	_, err = f.ReadFromWithConcurrency(io.MultiReader(bytes.NewReader(head), r), 0)
	return err
}

// replace moves tmp onto dst, replacing any object there. Rename keeps
// the file's attributes, so fi describes the new object.
func (s *Store) replace(ss *session, key, tmp, dst string, fi, old os.FileInfo) (os.FileInfo, error) {
	fi, err := s.distinctETag(ss, key, tmp, fi, old)
	if err != nil {
		return nil, err
	}
	rename := ss.c.Rename
	if s.posixRename {
		rename = ss.c.PosixRename
	}
	top, err := s.retryMissingDir(ss, key, dst, func() error { return rename(tmp, dst) })
	if err != nil && !s.posixRename {
		if _, serr := ss.c.Lstat(dst); serr == nil {
			return nil, sdk.Errorf(sdk.Unknown, "sftp: put %s: %s cannot replace a file atomically: it offers no posix-rename@openssh.com extension (%v)", key, s.cfg.addr(), err)
		}
	}
	if err != nil {
		return nil, ss.fail(err, "put %s: rename %s to %s", key, tmp, dst)
	}
	return fi, s.syncDirs(ss, key, path.Dir(dst), top)
}

// distinctETag makes sure the new object's ETag differs from the current
// one's. ETags are size and modification time, and SFTP times have whole
// seconds, so two puts of one size within a second would look the same:
// the new file's time is then moved one second past the old one's (old
// is the current object, nil when there is none).
func (s *Store) distinctETag(ss *session, key, tmp string, fi, old os.FileInfo) (os.FileInfo, error) {
	if old == nil || old.Size() != fi.Size() || old.ModTime().Unix() < fi.ModTime().Unix() {
		return fi, nil // nothing there, or the ETags differ anyway
	}
	t := time.Unix(old.ModTime().Unix()+1, 0)
	if err := ss.c.Chtimes(tmp, t, t); err != nil {
		return nil, ss.fail(err, "put %s: set the time of temporary file %s", key, tmp)
	}
	return fileInfo{size: fi.Size(), mod: t}, nil
}

// link makes tmp appear at dst only if dst does not exist: the hard link
// fails when it does. OpenSSH reports that as a generic failure, so a
// failure with dst present is taken as "exists".
func (s *Store) link(ss *session, key, tmp, dst string) error {
	top, err := s.retryMissingDir(ss, key, dst, func() error { return ss.c.Link(tmp, dst) })
	if err == nil {
		return s.syncDirs(ss, key, path.Dir(dst), top)
	}
	if _, serr := ss.c.Lstat(dst); serr == nil {
		return sdk.Errorf(sdk.AlreadyExists, "sftp: put %s: the key exists (if-absent put)", key)
	}
	return ss.fail(err, "put %s: link %s to %s", key, tmp, dst)
}

// retryMissingDir runs move, and when dst's directory is missing creates
// it and tries again; more than once, since a concurrent delete may prune
// the directory in between. It returns the topmost directory it created
// ("" when none), whose parent must be synced for the new entries to be
// durable.
func (s *Store) retryMissingDir(ss *session, key, dst string, move func() error) (string, error) {
	dir, top := path.Dir(dst), ""
	err := move()
	for range 5 {
		if !errors.Is(err, os.ErrNotExist) {
			return top, err
		}
		for d := dir; strings.HasPrefix(d, s.under()); d = path.Dir(d) {
			if _, err := ss.c.Stat(d); err == nil {
				break
			}
			if top == "" || len(d) < len(top) { // the highest over all tries
				top = d
			}
		}
		if err := ss.c.MkdirAll(dir); err != nil {
			return "", ss.fail(err, "put %s: create directory %s", key, dir)
		}
		err = move()
	}
	return top, err
}

// syncDirs flushes the directory entries a put made, from dir up to the
// parent of top (the topmost directory it created), so that the object
// survives a crash of the server once Put returned. A server that cannot
// open or sync directories only loses that guarantee, with a warning.
func (s *Store) syncDirs(ss *session, key, dir, top string) error {
	if !s.fsync || s.noDirSync.Load() {
		return nil
	}
	stop := dir
	if top != "" {
		stop = path.Dir(top)
	}
	for d := dir; ; d = path.Dir(d) {
		f, err := ss.c.Open(d)
		if err == nil {
			err = f.Sync()
			f.Close()
		}
		if err != nil {
			if isConnLost(err) || !ss.alive() {
				return ss.fail(err, "put %s: sync directory %s", key, d)
			}
			if !s.noDirSync.Swap(true) {
				slog.Warn("sftp: the server cannot sync directories; a put that returned may be lost if the server crashes", "host", s.cfg.addr(), "dir", d, "error", err.Error())
			}
			return nil
		}
		if d == stop || !strings.HasPrefix(d, s.under()) {
			return nil
		}
	}
}

func (s *Store) addOrphan(p string) {
	s.orphanMu.Lock()
	s.orphans = append(s.orphans, p)
	s.orphanMu.Unlock()
}

func (s *Store) removeOrphans(ss *session) {
	s.orphanMu.Lock()
	list := s.orphans
	s.orphans = nil
	s.orphanMu.Unlock()
	for _, p := range list {
		if err := ss.c.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.addOrphan(p)
		}
	}
}

// fileInfo is the attributes of a temporary file after Put set its time.
type fileInfo struct {
	size int64
	mod  time.Time
}

func (f fileInfo) Name() string       { return "" }
func (f fileInfo) Size() int64        { return f.size }
func (f fileInfo) Mode() os.FileMode  { return 0o644 }
func (f fileInfo) ModTime() time.Time { return f.mod }
func (f fileInfo) IsDir() bool        { return false }
func (f fileInfo) Sys() any           { return nil }

// readError marks an error of the caller's reader, so that it is not
// mistaken for a failure of the connection.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// ctxReader stops a copy when ctx is cancelled and marks the reader's own
// errors.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, readError{err}
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = readError{err}
	}
	return n, err
}
