package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sqlitereplicator/replicator/core/config"
)

// dirScanInterval is how soon a database created in a dir entry's
// directory starts replicating. One directory listing per entry per
// interval is the whole idle cost.
const dirScanInterval = 5 * time.Second

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// scanDirs returns the databases of the dir entries that exist now,
// except those explicitly listed (which keep their own settings) and the
// databases of followers (which this daemon writes, with follows naming
// those of a configuration not applied yet).
func (d *daemon) scanDirs(explicit map[string]config.DBConfig, follows []string) []config.DBConfig {
	open, followed := newOpenFiles(), newOpenFiles()
	d.mu.Lock()
	dirs := d.dirs
	for path := range d.dbs {
		open.add(path)
	}
	for path := range d.fols {
		followed.add(path)
	}
	d.mu.Unlock()
	for path := range explicit {
		open.add(path)
	}
	for _, path := range follows {
		followed.add(path)
	}
	var out []config.DBConfig
	seen := map[string]bool{}
	for _, dir := range dirs {
		for _, path := range findDatabases(dir, d.e, open, followed) {
			if _, ok := explicit[path]; ok || seen[path] || followed.has(path) {
				continue
			}
			if dc, ok := dir.Match(path); ok {
				seen[path] = true
				out = append(out, dc)
			}
		}
	}
	return out
}

// openFiles are databases this process has open, or is about to open,
// through SQLite. The scan must not open them itself: closing any
// descriptor of a file drops every POSIX lock the process holds on it,
// SQLite's among them, and without its shared lock on the database an
// application closing its last connection takes the database for
// unused, checkpoints the whole WAL under the daemon's read snapshot and
// deletes the WAL. Files are told apart by path, and by identity for a
// path that names a file another way (a link, a relative path).
type openFiles struct {
	paths map[string]bool
	infos []os.FileInfo
}

func newOpenFiles() *openFiles { return &openFiles{paths: map[string]bool{}} }

func (o *openFiles) add(path string) {
	o.paths[path] = true
	if fi, err := os.Stat(path); err == nil {
		o.infos = append(o.infos, fi)
	}
}

func (o *openFiles) has(path string) bool {
	if o.paths[path] {
		return true
	}
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	for _, k := range o.infos {
		if os.SameFile(fi, k) {
			return true
		}
	}
	return false
}

// findDatabases lists the files under dir's directory that match its
// pattern and are SQLite databases; others (a database still being
// created, a file of another kind) are passed over until a later scan.
// Files open or followed are taken for databases without a look inside.
func findDatabases(dir config.DirConfig, e *env, open, followed *openFiles) []string {
	var out []string
	err := filepath.WalkDir(dir.Dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			if path == dir.Dir {
				return err
			}
			return nil // a subdirectory that went away or cannot be read
		}
		if de.IsDir() {
			if path != dir.Dir && (!dir.Recursive || strings.HasSuffix(de.Name(), "-replicator")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !de.Type().IsRegular() {
			return nil
		}
		if ok, _ := filepath.Match(dir.Pattern, de.Name()); !ok || isSidecar(de.Name()) {
			return nil
		}
		if open.has(path) || followed.has(path) || isSQLite(path) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		e.log.Warn("cannot list the directory of a dir entry", "dir", dir.Dir, "err", err)
	}
	return out
}

// isSidecar reports whether name is one of SQLite's own files beside a
// database, which a broad pattern such as "*" would match.
func isSidecar(name string) bool {
	for _, s := range []string{"-wal", "-shm", "-journal"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

func isSQLite(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, len(sqliteMagic))
	if _, err := f.Read(b); err != nil {
		return false
	}
	return bytes.Equal(b, sqliteMagic)
}

// watchDirs starts the databases that appear in dir entries and stops
// those whose file is gone, until ctx ends.
func (d *daemon) watchDirs(ctx context.Context) {
	t := time.NewTicker(dirScanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.rescan(ctx)
	}
}

func (d *daemon) rescan(ctx context.Context) {
	d.changing.Lock()
	defer d.changing.Unlock()
	d.mu.Lock()
	explicit := map[string]config.DBConfig{}
	var fromDirs []string
	for path, r := range d.dbs {
		if r.fromDir {
			fromDirs = append(fromDirs, path)
		} else {
			explicit[path] = r.cfg
		}
	}
	d.mu.Unlock()
	found := map[string]bool{}
	for _, dc := range d.scanDirs(explicit, nil) {
		found[dc.Path] = true
		if d.db(dc.Path) != nil {
			continue
		}
		err := d.startDB(ctx, dc, true)
		d.mu.Lock()
		prev := d.dirErrs[dc.Path]
		if err != nil {
			d.dirErrs[dc.Path] = err.Error()
		} else {
			delete(d.dirErrs, dc.Path)
		}
		d.mu.Unlock()
		if err != nil && err.Error() != prev {
			d.e.log.Warn("database found in a dir entry not started; retrying at every scan", "db", dc.Path, "err", err)
		}
	}
	for _, path := range fromDirs {
		if !found[path] {
			d.e.log.Info("stopping database", "db", path, "reason", "its file is gone")
			d.stopDB(path)
		}
	}
}
