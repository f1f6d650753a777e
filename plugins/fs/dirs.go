package fs

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// mkdirParents creates dir and its missing parents under root and returns
// the topmost directory it created ("" when none was missing), whose parent
// must be fsynced for the new entries to be durable.
func mkdirParents(root, dir string) (string, error) {
	top := ""
	for d := dir; d != root && len(d) > len(root); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		top = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create directory %s: %w", dir, err)
	}
	return top, nil
}

// retryMissingDir runs move, re-creating dst's directory when a concurrent
// delete pruned it in between.
func retryMissingDir(root, dst string, move func() error) error {
	var err error
	for range 5 {
		if err = move(); !errors.Is(err, iofs.ErrNotExist) {
			return err
		}
		if _, err := mkdirParents(root, filepath.Dir(dst)); err != nil {
			return err
		}
	}
	return err
}

// syncDirs fsyncs dir and, when directories were created up to top, every
// directory from dir up to top's parent.
func syncDirs(root, dir, top string) error {
	stop := dir
	if top != "" {
		stop = filepath.Dir(top)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if err := syncDir(d); err != nil {
			return err
		}
		if d == stop || d == root || len(d) <= len(root) {
			return nil
		}
	}
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// pruneEmptyDirs removes dir and its parents below root while they are
// empty, so deleted generations leave no directory skeletons behind.
func pruneEmptyDirs(root, dir string) {
	for d := dir; d != root && len(d) > len(root); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			return
		}
	}
}

// lockFile takes an exclusive flock on path, serialising if-match puts of
// several processes on one directory.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}
