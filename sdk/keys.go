package sdk

import (
	"strings"
	"unicode/utf8"
)

// MaxKeyLength is the longest key, in bytes, that every backend must accept.
const MaxKeyLength = 1024

// ValidateKey reports whether key is a valid object key: non-empty valid
// UTF-8 of at most MaxKeyLength bytes, relative, slash-separated segments
// none of which is empty, "." or "..", and no NUL or backslash. Keys this
// strict map onto every backend, a file system included, without escaping,
// and can never name a path outside a store's root. The error is
// InvalidArgument.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return Errorf(InvalidArgument, "empty key")
	case len(key) > MaxKeyLength:
		return Errorf(InvalidArgument, "key %.40q... is longer than %d bytes", key, MaxKeyLength)
	case !utf8.ValidString(key):
		return Errorf(InvalidArgument, "key %q is not valid UTF-8", key)
	case strings.ContainsRune(key, 0):
		return Errorf(InvalidArgument, "key %q contains a NUL byte", key)
	case strings.ContainsRune(key, '\\'):
		return Errorf(InvalidArgument, "key %q contains a backslash", key)
	case strings.HasPrefix(key, "/"):
		return Errorf(InvalidArgument, "key %q is absolute; keys are relative to the store", key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return Errorf(InvalidArgument, "key %q has an empty path segment", key)
		case ".", "..":
			return Errorf(InvalidArgument, "key %q has a %q path segment", key, seg)
		}
	}
	return nil
}

// ValidatePrefix reports whether prefix can start keys: empty, or a valid
// key possibly ending in "/" (its last segment may be partial). A prefix
// that could name a path outside a store's root is InvalidArgument.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := ValidateKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return Errorf(InvalidArgument, "list prefix %q: %w", prefix, err)
	}
	return nil
}
