package config

import (
	"path/filepath"
	"strings"
)

// Match reports whether the database at path (absolute) belongs to the
// dir entry, and returns its entry: the dir's settings, and its replicas
// with the database's path relative to Dir as their prefix, so that every
// database of the directory has a replica of its own.
func (d DirConfig) Match(path string) (DBConfig, bool) {
	rel, err := filepath.Rel(d.Dir, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return DBConfig{}, false
	}
	if !d.Recursive && strings.ContainsRune(rel, filepath.Separator) {
		return DBConfig{}, false
	}
	if ok, _ := filepath.Match(d.Pattern, filepath.Base(rel)); !ok {
		return DBConfig{}, false
	}
	db := DBConfig{Path: path, Settings: d.Settings, Line: d.Line}
	prefix := filepath.ToSlash(rel)
	for _, rc := range d.Replicas {
		rc.Settings = cloneSettings(rc.Settings)
		if rc.Prefix != "" {
			rc.Prefix += "/" + prefix
		} else {
			rc.Prefix = prefix
		}
		db.Replicas = append(db.Replicas, rc)
	}
	return db, true
}

func cloneSettings(s map[string]string) map[string]string {
	out := make(map[string]string, len(s))
	for k, v := range s {
		out[k] = v
	}
	return out
}
