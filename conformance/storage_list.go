package conformance

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/sdk"
)

// orderKeys sort differently in byte order than in a walk of directories
// ("a-c" < "a.d" < "a/b" < "a0", since '-' < '.' < '/' < '0'), than in
// a case-insensitive order ("Zed" < "a..."), and than by code points
// of UTF-16. No key is a path prefix of another.
var orderKeys = []string{
	"order/a b",
	"order/a+",
	"order/a-c",
	"order/a.d",
	"order/a/b",
	"order/a/c/d",
	"order/a0",
	"order/a_",
	"order/aa/x",
	"order/ab",
	"order/a~",
	"order/Zed",
	"order/z",
	"order/é",
	"order/日本",
	"order/\U0001F642", // 🙂: after U+FFFF, unlike in UTF-16 order
	"order/\uFF5E",     // ～ fullwidth tilde, before 🙂 in UTF-8
}

// paginationKeys is more than two pages of the common page size of 1000.
const paginationKeys = 2500

func testList(t *testing.T, h Harness) {
	leaf(t, h, "Empty", func(e *env) {
		e.wantList("", "", nil)
		e.wantList("none/", "", nil)
	})

	leaf(t, h, "Order", func(e *env) {
		want := slices.Sorted(slices.Values(orderKeys))
		e.putMany(shuffled(orderKeys), func(i int) []byte { return []byte("x") })
		e.wantList("", "", want)
		e.wantList("order/", "", want)
	})

	// A prefix is a prefix of bytes, not a directory.
	leaf(t, h, "Prefix", func(e *env) {
		keys := []string{"p/a", "p/ab/c", "p/abc", "p/b/a", "pa/x", "q/a"}
		e.putMany(keys, func(int) []byte { return []byte("x") })
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"p/", []string{"p/a", "p/ab/c", "p/abc", "p/b/a"}},
			{"p", []string{"p/a", "p/ab/c", "p/abc", "p/b/a", "pa/x"}},
			{"p/a", []string{"p/a", "p/ab/c", "p/abc"}},
			{"p/ab", []string{"p/ab/c", "p/abc"}},
			{"p/ab/", []string{"p/ab/c"}},
			{"p/abc", []string{"p/abc"}},
			{"p/b/a", []string{"p/b/a"}},
			{"p/c", nil},
			{"r", nil},
			{"", keys},
		} {
			e.wantList(tc.prefix, "", tc.want)
		}
	})

	leaf(t, h, "StartAfter", func(e *env) {
		keys := []string{"k/a", "k/b", "k/b0", "k/c/d", "k/e"}
		e.putMany(keys, func(int) []byte { return []byte("x") })
		for _, tc := range []struct {
			startAfter string
			want       []string
		}{
			{"k/a", keys[1:]},   // an existing key is excluded
			{"k/b", keys[2:]},   // and one that prefixes the next
			{"k/a0", keys[1:]},  // a missing key between two
			{"k/c", keys[3:]},   // a directory-like prefix
			{"k/c/d", keys[4:]}, // the last key in a sub-"directory"
			{"k/", keys},        // before all of them
			{"a", keys},         // far before
			{"k/e", nil},        // the last key
			{"k/f", nil},        // after all of them
		} {
			e.wantList("", tc.startAfter, tc.want)
		}
	})

	leaf(t, h, "PrefixAndStartAfter", func(e *env) {
		keys := []string{"m/a", "m/b", "m/c", "n/a", "n/b"}
		e.putMany(keys, func(int) []byte { return []byte("x") })
		for _, tc := range []struct {
			prefix, startAfter string
			want               []string
		}{
			{"m/", "m/a", []string{"m/b", "m/c"}},
			{"n/", "m/c", []string{"n/a", "n/b"}}, // startAfter before the prefix
			{"m/", "n/a", nil},                    // startAfter past the prefix
			{"n/", "n/b", nil},
			{"m/", "", []string{"m/a", "m/b", "m/c"}},
		} {
			e.wantList(tc.prefix, tc.startAfter, tc.want)
		}
	})

	leaf(t, h, "Pagination", func(e *env) {
		keys := make([]string, paginationKeys)
		for i := range keys {
			// Spread over subdirectories, with numbers of different widths so
			// that byte order is not numeric order.
			keys[i] = fmt.Sprintf("page/%x/%d", i%7, i)
		}
		e.putMany(shuffled(keys), func(int) []byte { return []byte("x") })
		slices.Sort(keys)
		e.wantList("", "", keys)

		mid := keys[1234]
		e.wantList("", mid, keys[1235:])
		var sub []string
		for _, k := range keys {
			if strings.HasPrefix(k, "page/3/") {
				sub = append(sub, k)
			}
		}
		e.wantList("page/3/", "", sub)
		e.wantList("page/3/", sub[100], sub[101:])
	})

	leaf(t, h, "StopOnError", func(e *env) {
		keys := []string{"s/0", "s/1", "s/2", "s/3", "s/4", "s/5"}
		e.putMany(keys, func(int) []byte { return []byte("x") })
		stop := errors.New("conformance: stop listing")
		var seen []string
		err := e.s.List(e.ctx, "s/", "", func(info sdk.ObjectInfo) error {
			seen = append(seen, info.Key)
			if len(seen) == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			e.t.Errorf("List(prefix=%q) whose callback failed on the third key returned %v, want the callback's error", "s/", err)
		}
		if !slices.Equal(seen, keys[:3]) {
			e.t.Errorf("List(prefix=%q) whose callback failed on the third key called it for %q, want %q", "s/", seen, keys[:3])
		}
	})

	leaf(t, h, "Info", func(e *env) {
		sizes := map[string]int{"i/empty": 0, "i/one": 1, "i/big": 70000}
		for k, n := range sizes {
			e.put(k, text(n))
		}
		for _, info := range e.list("i/", "") {
			st := e.stat(info.Key)
			if int64(sizes[info.Key]) != info.Size {
				e.t.Errorf("List(prefix=%q) reports %q with Size %d, want %d", "i/", info.Key, info.Size, sizes[info.Key])
			}
			if info.ETag != "" && info.ETag != st.ETag {
				e.t.Errorf("List(prefix=%q) reports %q with ETag %q, Stat with %q", "i/", info.Key, info.ETag, st.ETag)
			}
		}
		e.wantList("i/", "", []string{"i/big", "i/empty", "i/one"})
	})
}
