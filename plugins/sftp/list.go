package sftp

import (
	"context"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/sqlitereplicator/replicator/sdk"
)

// List walks only the directories that can hold matching keys: it starts
// at the deepest directory the prefix names and skips subtrees that sort
// wholly at or before startAfter, so that listing what is new in a large
// replica costs few round trips.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	dirKey := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dirKey = prefix[:i+1]
		// No valid key lies under "a//", "../" or the like, and such a
		// prefix must not name a path outside the root.
		if sdk.ValidateKey(dirKey[:i]) != nil {
			return nil
		}
	}
	return s.walk(ctx, dirKey, prefix, startAfter, fn)
}

// dirEntry is a directory entry and the key it sorts as: a directory sorts
// as its name plus "/", which is where its keys fall among its siblings
// ("a-b" < "a/x" < "a0" in byte order, though "a" < "a-b").
type dirEntry struct {
	key string
	fi  os.FileInfo
}

// walk lists directory dirKey ("" for the root, else ending in "/"). The
// session is held only while reading a directory, never while fn runs, so
// fn may call the store.
func (s *Store) walk(ctx context.Context, dirKey, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := path.Join(s.root, dirKey)
	var infos []os.FileInfo
	err := s.pool.with(ctx, func(ss *session) error {
		var err error
		infos, err = ss.c.ReadDirContext(ctx, dir)
		return ss.fail(err, "list %s", dir)
	})
	if sdk.CodeOf(err) == sdk.NotFound {
		return nil // no such directory, or it was pruned meanwhile
	}
	if err != nil {
		return err
	}
	entries := make([]dirEntry, 0, len(infos))
	for _, fi := range infos {
		name := fi.Name()
		if name == "." || name == ".." || (dirKey == "" && name == tmpDir) {
			continue
		}
		k := dirKey + name
		if fi.IsDir() {
			k += "/"
		}
		entries = append(entries, dirEntry{k, fi})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	for _, e := range entries {
		k := e.key
		if e.fi.IsDir() {
			// Keys under k lie in [k, k+"\xff"...): skip the directory when
			// it cannot hold the prefix, or every key in it is <= startAfter.
			if !strings.HasPrefix(k, prefix) && !strings.HasPrefix(prefix, k) {
				continue
			}
			if startAfter != "" && k <= startAfter && !strings.HasPrefix(startAfter, k) {
				continue
			}
			if err := s.walk(ctx, k, prefix, startAfter, fn); err != nil {
				return err
			}
			continue
		}
		if !e.fi.Mode().IsRegular() || !strings.HasPrefix(k, prefix) || (startAfter != "" && k <= startAfter) {
			continue
		}
		if err := fn(objectInfo(k, e.fi)); err != nil {
			return err
		}
	}
	return nil
}
