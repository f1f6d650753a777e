package localstate

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Dir is an open, locked state directory.
type Dir struct {
	path string
	lock *os.File
}

// DefaultPath returns the state directory used for the database at dbPath:
// beside the database file itself, symbolic links followed. A database
// named through a link and by its own path then has one state directory,
// and its lock keeps a second daemon off it however it is named.
func DefaultPath(dbPath string) string {
	if real, err := filepath.EvalSymlinks(dbPath); err == nil {
		dbPath = real
	}
	return filepath.Join(filepath.Dir(dbPath), "."+filepath.Base(dbPath)+"-replicator")
}

// ErrLocked means another process holds the state directory.
var ErrLocked = errors.New("state directory is locked by another process")

// Open creates (if needed) and locks the state directory at path. A second
// daemon for the same database fails here with ErrLocked.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(filepath.Join(path, "segments"), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Join(path, "replicas"), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", path, err)
	}
	f, err := os.OpenFile(filepath.Join(path, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock in %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		owner, _ := io.ReadAll(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (held by %s); only one replicator may replicate a database: stop the other one first",
				ErrLocked, path, string(owner))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "pid %d", os.Getpid())
	return &Dir{path: path, lock: f}, nil
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// Close releases the lock.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close()
	d.lock = nil
	return err
}

// WriteFileAtomic replaces the file name in the directory with data,
// durably.
func (d *Dir) WriteFileAtomic(name string, data []byte) error {
	return writeAtomic(filepath.Join(d.path, name), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func (d *Dir) readJSON(name string, v any) error {
	b, err := os.ReadFile(filepath.Join(d.path, name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("state file %s is damaged: %w", filepath.Join(d.path, name), err)
	}
	return nil
}

func (d *Dir) writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return d.WriteFileAtomic(name, append(b, '\n'))
}

// writeAtomic writes path through a temporary file: write, fsync, rename,
// fsync the directory.
func writeAtomic(path string, write func(io.Writer) error) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
