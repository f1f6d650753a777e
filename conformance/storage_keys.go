package conformance

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/sdk"
)

// longKeyLength leaves room under sdk.MaxKeyLength for the prefix a harness
// may add to isolate tests (a store with a prefix of its own can only
// promise MaxKeyLength minus that prefix on backends limited to 1024 bytes).
const longKeyLength = sdk.MaxKeyLength - 128

// awkwardKeys are valid keys that need care: escaping in URLs, Unicode,
// deep or long paths. Every reasonable backend accepts them.
var awkwardKeys = []struct{ name, key string }{
	{"Space", "with space/a b  c.txt"},
	{"Unicode", "unicode/héllo wörld/日本語/ファイル"},
	{"Emoji", "emoji/\U0001F642\U0001F680/\U0001F468\u200D\U0001F469\u200D\U0001F467"}, // 🙂🚀/👨‍👩‍👧
	{"Combining", "combining/e\u0301te/a\u0308\u0323"},                                 // decomposed; must not be normalised
	{"Punctuation", "punct/a+b=c&d%20e%2F!$'(),;@~"},
	{"Hash", "punct/a#b#"},
	{"Question", "punct/a?b=c"},
	{"Brackets", "punct/[a]{b}^`"},
	{"Deep", "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/leaf"},
	{"Dots", "dots/a/b.c"},
	{"DotsInSegment", "dots/.hidden/x..y/.z"},
	{"Long", longKey()},
}

// longKey is longKeyLength bytes of segments of at most 100 bytes, well
// within the 255 a file system allows for a name, with room for a
// temporary suffix.
func longKey() string {
	var b strings.Builder
	b.WriteString("long")
	for longKeyLength-b.Len() > 101 {
		b.WriteString("/" + strings.Repeat("k", 99))
	}
	b.WriteString("/" + strings.Repeat("k", longKeyLength-b.Len()-1))
	return b.String()
}

// invalidKeys are rejected by sdk.ValidateKey and so must be by Put.
var invalidKeys = []struct{ name, key string }{
	{"Empty", ""},
	{"DotDot", "a/../b"},
	{"LeadingDotDot", "../escape"},
	{"TrailingDotDot", "a/.."},
	{"Dot", "a/./b"},
	{"Absolute", "/etc/absolute"},
	{"NUL", "a\x00b"},
	{"Backslash", `a\b`},
	{"BackslashDotDot", `..\escape`},
	{"EmptySegment", "a//b"},
	{"TrailingSlash", "a/"},
	{"InvalidUTF8", "a\xffb"},
	{"TooLong", strings.Repeat("a/", sdk.MaxKeyLength/2) + "b"},
}

func testKeys(t *testing.T, h Harness) {
	t.Run("Awkward", func(t *testing.T) {
		for _, k := range awkwardKeys {
			leaf(t, h, k.name, func(e *env) {
				if err := sdk.ValidateKey(k.key); err != nil {
					e.t.Fatalf("conformance suite bug: awkward key %q is invalid: %v", k.key, err)
				}
				data := []byte("content of " + k.key)
				put := e.put(k.key, data)
				if put.Key != k.key {
					e.t.Errorf("Put(%q) returned Key %q", k.key, put.Key)
				}
				e.wantContent(k.key, data)
				if st := e.stat(k.key); st.Key != k.key || st.Size != int64(len(data)) {
					e.t.Errorf("Stat(%q) returned Key %q, Size %d; want the key and %d", k.key, st.Key, st.Size, len(data))
				}
				e.wantList("", "", []string{k.key})
				e.wantList(k.key, "", []string{k.key})
				e.del(k.key)
				e.wantAbsent(k.key)
			})
		}
		// All of them in one store: none is confused with another, and
		// they list in byte order.
		leaf(t, h, "All", func(e *env) {
			var keys []string
			for _, k := range awkwardKeys {
				keys = append(keys, k.key)
			}
			e.putMany(keys, func(i int) []byte { return []byte(keys[i]) })
			infos := e.list("", "")
			got := make([]string, len(infos))
			for i, info := range infos {
				got[i] = info.Key
			}
			sorted := slices.Sorted(slices.Values(keys))
			if d := diffKeys(got, sorted); d != "" {
				e.t.Errorf("List(prefix=%q) of the awkward keys: %s", "", d)
			}
			for _, k := range keys {
				e.wantContent(k, []byte(k))
			}
		})
	})

	t.Run("Invalid", func(t *testing.T) {
		for _, k := range invalidKeys {
			leaf(t, h, k.name, func(e *env) {
				if sdk.ValidateKey(k.key) == nil {
					e.t.Fatalf("conformance suite bug: invalid key %q is valid", k.key)
				}
				_, err := e.putErr(k.key, []byte("must not be stored"), sdk.PutOptions{})
				e.wantCode(err, sdk.ErrInvalidArgument, "Put(%q)", k.key)
				if infos := e.list("", ""); len(infos) != 0 {
					keys := make([]string, len(infos))
					for i, info := range infos {
						keys[i] = info.Key
					}
					e.t.Errorf("after Put(%q) with an invalid key, List(prefix=%q) reports %q, want nothing", k.key, "", keys)
				}
				// Whatever Put did, reading the key back must not find
				// the content.
				if got, err := e.readRange(k.key, 0, -1); err == nil && bytes.Equal(got, []byte("must not be stored")) {
					e.t.Errorf("Get(%q) of an invalid key returned what Put was given", k.key)
				}
			})
		}
	})
}
