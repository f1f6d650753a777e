//go:build !linux

package watch

import "errors"

// newNotifier has no file notifications to offer outside Linux: changes
// are seen by the poll.
func newNotifier(changed func(path string), lost func()) (notifier, error) {
	return nil, errors.New("file notifications are implemented for Linux only")
}
