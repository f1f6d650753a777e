//go:build !race

package wal

// raceEnabled lets tests that checksum gigabytes shrink themselves under the
// race detector, which slows such loops down about seventy-fold.
const raceEnabled = false
