package sdk

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// LocalFiler is implemented by a Storage whose objects are plain files on
// the machine the plugin runs on, such as a directory-backed store. It is
// optional: the SDK uses it only to serve Get, and a store without it works
// exactly the same, only slower.
//
// Why: the host (the plugin's parent, on the same machine, as the same
// user) can read such a file itself, so the SDK sends it the file's path
// instead of streaming the bytes through the plugin connection, whose
// encryption, copies and framing cost several times what reading the file
// does. The core verifies every object it reads end to end as before, and
// the host falls back to streaming when it cannot use the path.
//
// Contract: LocalPath returns the absolute path of a regular file that
// holds exactly the bytes of the object at key, as Get would return them
// whole. The file must be written whole and replaced atomically (a rename
// over it, never a rewrite in place), so that a reader holding it open
// keeps reading one version. A missing key is NotFound, as from Get. Any
// other error makes the SDK stream the object through Get instead, so
// LocalPath may refuse objects it cannot serve as a file. The key is
// already valid by ValidateKey. It must not return a path for anything
// that is not an object (a temporary file, a lock).
type LocalFiler interface {
	LocalPath(ctx context.Context, key string) (string, error)
}

// localReader reads a byte range of a local file the plugin named.
type localReader struct {
	*io.SectionReader
	f *os.File
}

func (r *localReader) Close() error { return r.f.Close() }

// openLocal opens the file at path that a plugin said holds an object of
// size bytes and returns a reader of the range Get asked for, cut short at
// the end of the object as Storage.Get says. It refuses a path that is not
// absolute, a file that is not regular and a file of another size (the
// plugin sees another file system, or the object was replaced meanwhile);
// the caller then streams the object instead.
func openLocal(path string, size, offset, length int64) (io.ReadCloser, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("local path %q is not absolute", path)
	}
	// Read only, and non-blocking so that a FIFO put in the object's place
	// cannot hang the open; regular files ignore the flag.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open local file: %w", err)
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
		err = fmt.Errorf("stat local file %s: %w", path, err)
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("local file %s is not a regular file (mode %s)", path, fi.Mode())
	case fi.Size() != size:
		err = fmt.Errorf("local file %s has %d bytes, the plugin said %d", path, fi.Size(), size)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	n := max(size-offset, 0)
	if length >= 0 && length < n {
		n = length
	}
	return &localReader{SectionReader: io.NewSectionReader(f, offset, n), f: f}, nil
}
