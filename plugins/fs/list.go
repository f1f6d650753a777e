package fs

import (
	"context"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sqlitereplicator/replicator/sdk"
)

// List walks only the directories that can hold matching keys: it starts at
// the deepest directory the prefix names and skips subtrees that sort
// wholly at or before startAfter, so listing what is new in a large replica
// costs little.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	if err := sdk.ValidatePrefix(prefix); err != nil {
		return err
	}
	dirKey := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dirKey = prefix[:i+1]
	}
	return s.walk(ctx, dirKey, prefix, startAfter, fn)
}

// walk lists directory dirKey ("" for the root, else ending in "/"). Entries
// are visited in the byte order of their keys: a directory sorts as its
// name plus "/", which is where its keys fall among its siblings.
func (s *Store) walk(ctx context.Context, dirKey, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(dirKey)))
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	type entry struct {
		key string
		e   iofs.DirEntry
	}
	list := make([]entry, 0, len(entries))
	for _, e := range entries {
		if dirKey == "" && e.Name() == tmpDir {
			continue
		}
		k := dirKey + e.Name()
		if e.IsDir() {
			k += "/"
		}
		list = append(list, entry{k, e})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].key < list[j].key })
	for _, it := range list {
		k := it.key
		if it.e.IsDir() {
			// Keys under k/ lie in [k, k+"\xff"...): skip the directory when
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
		if !strings.HasPrefix(k, prefix) || (startAfter != "" && k <= startAfter) || !it.e.Type().IsRegular() {
			continue
		}
		fi, err := it.e.Info()
		if errors.Is(err, iofs.ErrNotExist) {
			continue // deleted while listing
		}
		if err != nil {
			return err
		}
		if err := fn(info(k, fi)); err != nil {
			return err
		}
	}
	return nil
}
