//go:build !linux

package capture

import (
	"errors"
	"os"
)

func openShm(string) (*os.File, error) {
	return nil, errors.New("no open file description locks on this platform")
}

func lockByte(*os.File, bool) error { return errors.New("unsupported") }
