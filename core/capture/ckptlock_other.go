//go:build !linux

package capture

import (
	"errors"
	"os"
	"time"
)

func openShm(string) (*os.File, error) {
	return nil, errors.New("no open file description locks on this platform")
}

func lockByte(*os.File, bool) error { return errors.New("unsupported") }

func pause(d time.Duration) { time.Sleep(d) }
