//go:build !linux

package capture

import (
	"errors"
	"os"
	"time"
)

func openShm(string) (*os.File, error) {
	return nil, errors.New("the checkpointer lock is held on Linux only")
}

func lockByte(*os.File, bool) error { return errors.New("unsupported") }

func lockWriteByte(*os.File, bool) error { return errors.New("unsupported") }

func lockConflict(error) bool { return false }

func pause(d time.Duration) { time.Sleep(d) }

func syncData(f *os.File) error { return f.Sync() }
