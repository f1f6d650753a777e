package azure

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/sqlitereplicator/replicator/sdk"
)

// utf16Compare orders strings as Azure does: by UTF-16 code units.
func utf16Compare(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

// runOrderer feeds keys to an orderer and returns what it emitted.
func runOrderer(t *testing.T, keys []string) ([]string, error) {
	t.Helper()
	var got []string
	o := &orderer{emit: func(info sdk.ObjectInfo) error {
		got = append(got, info.Key)
		return nil
	}}
	for _, k := range keys {
		if err := o.add(sdk.ObjectInfo{Key: k}); err != nil {
			return got, err
		}
	}
	return got, o.flush()
}

// TestOrdererUTF16 checks the repair of the service's UTF-16 order into
// byte order on random keys built from the characters where the two
// orders disagree (U+E000..U+FFFF against characters above U+FFFF).
func TestOrdererUTF16(t *testing.T) {
	alphabet := []string{"a", "b", "/", "-", "é", "\uE000", "\uFF5E", "\uFFFD", "\U00010000", "\U0001F642", "日"}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		seen := map[string]bool{}
		var keys []string
		for range 1 + rng.IntN(60) {
			var b strings.Builder
			for range 1 + rng.IntN(5) {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			if k := b.String(); !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		served := slices.SortedFunc(slices.Values(keys), utf16Compare)
		got, err := runOrderer(t, served)
		if err != nil {
			t.Fatalf("round %d: %v (input %q)", round, err, served)
		}
		if want := slices.Sorted(slices.Values(keys)); !slices.Equal(got, want) {
			t.Fatalf("round %d: from %q\ngot  %q\nwant %q", round, served, got, want)
		}
	}
}

// TestOrdererByteOrder checks that a service listing in byte order already
// (as some emulators do) passes through unchanged.
func TestOrdererByteOrder(t *testing.T) {
	keys := []string{"a", "a/\uFF5E", "a/\U0001F642", "a/\U0001F642/x", "b", "\uFF5E", "\U0001F642"}
	slices.Sort(keys)
	got, err := runOrderer(t, keys)
	if err != nil || !slices.Equal(got, keys) {
		t.Fatalf("got %q, %v; want %q", got, err, keys)
	}
}

// TestOrdererRefusesDirectoryOrder checks that an order the orderer cannot
// repair (a hierarchical namespace lists "a/x" before "a-b") fails rather
// than reaching the caller out of order.
func TestOrdererRefusesDirectoryOrder(t *testing.T) {
	_, err := runOrderer(t, []string{"a/x", "a-b"})
	if err == nil || !strings.Contains(err.Error(), "hierarchical namespace") {
		t.Fatalf("got %v, want an error about the order", err)
	}
}

// TestOrdererHoldsOnlyRegion checks that keys are held back only within
// the region of a character above U+FFFF and released on leaving it.
func TestOrdererHoldsOnlyRegion(t *testing.T) {
	var got []string
	o := &orderer{emit: func(info sdk.ObjectInfo) error { got = append(got, info.Key); return nil }}
	add := func(k string) {
		if err := o.add(sdk.ObjectInfo{Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	add("a/1")
	add("a/2")
	if len(got) != 2 {
		t.Fatalf("plain keys held back: emitted %q", got)
	}
	add("b/\U0001F642")
	add("b/\uFF5E")
	if len(got) != 2 || len(o.held) != 2 {
		t.Fatalf("emitted %q with %d held; want the region held", got, len(o.held))
	}
	add("c")
	want := []string{"a/1", "a/2", "b/\uFF5E", "b/\U0001F642", "c"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestServerStart checks that the startFrom sent to the service never
// skips a key that sorts after startAfter in byte order, given that the
// service compares in UTF-16 order.
func TestServerStart(t *testing.T) {
	alphabet := []string{"a", "b", "/", "é", "\uD7FF", "\uE000", "\uFF5E", "\U00010000", "\U0001F642"}
	rng := rand.New(rand.NewPCG(3, 4))
	word := func() string {
		var b strings.Builder
		for range 1 + rng.IntN(4) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 20000 {
		after, k := word(), word()
		from := serverStart(after)
		if !strings.HasPrefix(after, from) {
			t.Fatalf("serverStart(%q) = %q, not a prefix", after, from)
		}
		if k > after && utf16Compare(k, from) < 0 {
			t.Fatalf("key %q is after %q in byte order, but the service would skip it starting from %q", k, after, from)
		}
	}
	if got := serverStart("gen/0001/seg"); got != "gen/0001/seg" {
		t.Errorf("serverStart of an ASCII key = %q, want it whole", got)
	}
}
