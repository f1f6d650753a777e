//go:build !linux

package watch

import "errors"

// newNotifier has no file notifications to offer outside Linux: changes
// are seen by the poll.
func newNotifier(changed func(path string), lost func(), gone func(dir string)) (notifier, error) {
	return nil, errors.New("file notifications are implemented for Linux only")
}

// fsType is not asked outside Linux: without notifications no directory
// is trusted.
func fsType(dir string) (uint32, error) {
	return 0, errors.New("file system types are read on Linux only")
}

func trustedFSType(uint32) bool { return false }
