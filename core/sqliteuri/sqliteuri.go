// Package sqliteuri builds the URI filenames our SQLite connections are
// opened with.
//
// A database's path cannot be pasted after "file:": SQLite reads '?' as
// the start of the parameters, '#' as the start of a fragment and '%' as
// an escape, so "app#1.db" opens "app" (creating it, empty, unless the mode
// forbids it) and "x?y.db" fails with a confusing error. Every character
// of the path that means something in a URI is escaped here.
package sqliteuri

import "net/url"

// For returns the URI for the database at path with the query
// parameters q (which may be nil).
func For(path string, q url.Values) string {
	s := "file:" + (&url.URL{Path: path}).EscapedPath()
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}
