package segment

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Object naming, as laid out under a replica's path:
//
//	generations/<generation>/snapshots/<txid:016x>.snapshot
//	generations/<generation>/segments/<level>/<min:016x>-<max:016x>.segment
//
// Names hold 16 lowercase hex digits per txid so that a lexical listing is
// in txid order. The parsers accept exactly what the formatters produce, so
// a name has one spelling and foreign objects in a bucket are never taken
// for ours.

const (
	snapshotSuffix = ".snapshot"
	segmentSuffix  = ".segment"
	hexTXIDLen     = 16

	// MaxLevel is the highest compaction level in segment keys; levels
	// are the single digits 0..MaxLevel.
	MaxLevel = 9
)

// SnapshotName returns the file name of the snapshot at txid.
func SnapshotName(txid uint64) string {
	return fmt.Sprintf("%016x%s", txid, snapshotSuffix)
}

// SegmentName returns the file name of the segment holding txids min..max.
func SegmentName(min, max uint64) string {
	return fmt.Sprintf("%016x-%016x%s", min, max, segmentSuffix)
}

// ParseSnapshotName returns the txid of a name made by SnapshotName. Any
// other spelling, and txid 0, is an error.
func ParseSnapshotName(name string) (txid uint64, err error) {
	hex, ok := strings.CutSuffix(name, snapshotSuffix)
	if !ok || len(hex) != hexTXIDLen {
		return 0, fmt.Errorf("segment: %q is not a snapshot name (<16 hex digits>%s)", name, snapshotSuffix)
	}
	if txid, err = parseTXID(hex); err != nil {
		return 0, fmt.Errorf("segment: snapshot name %q: %w", name, err)
	}
	return txid, nil
}

// ParseSegmentName returns the txid range of a name made by SegmentName.
// Any other spelling, txid 0 and min > max are errors.
func ParseSegmentName(name string) (min, max uint64, err error) {
	body, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(body) != 2*hexTXIDLen+1 || body[hexTXIDLen] != '-' {
		return 0, 0, fmt.Errorf("segment: %q is not a segment name (<16 hex>-<16 hex>%s)", name, segmentSuffix)
	}
	if min, err = parseTXID(body[:hexTXIDLen]); err != nil {
		return 0, 0, fmt.Errorf("segment: segment name %q: %w", name, err)
	}
	if max, err = parseTXID(body[hexTXIDLen+1:]); err != nil {
		return 0, 0, fmt.Errorf("segment: segment name %q: %w", name, err)
	}
	if min > max {
		return 0, 0, fmt.Errorf("segment: segment name %q: min txid > max txid", name)
	}
	return min, max, nil
}

// parseTXID parses 16 lowercase hex digits. strconv alone would also take
// uppercase, which would give one txid two names.
func parseTXID(s string) (uint64, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return 0, fmt.Errorf("%q is not lowercase hex", s)
		}
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, err
	}
	if v == 0 {
		return 0, errors.New("txid 0")
	}
	return v, nil
}

// SnapshotKey returns the key, relative to the replica's path, of the
// snapshot of generation gen at txid.
func SnapshotKey(gen string, txid uint64) (string, error) {
	if err := ValidateGeneration(gen); err != nil {
		return "", err
	}
	return path.Join("generations", gen, "snapshots", SnapshotName(txid)), nil
}

// SegmentKey returns the key, relative to the replica's path, of the
// segment of generation gen at compaction level level holding min..max.
func SegmentKey(gen string, level int, min, max uint64) (string, error) {
	if err := ValidateGeneration(gen); err != nil {
		return "", err
	}
	if level < 0 || level > MaxLevel {
		return "", fmt.Errorf("segment: level %d is outside 0..%d", level, MaxLevel)
	}
	return path.Join("generations", gen, "segments", strconv.Itoa(level), SegmentName(min, max)), nil
}

// ValidateGeneration checks that gen can name a generation: 1 to
// MaxGenerationLen bytes of [0-9A-Za-z_-]. The set is narrow because the id
// becomes a path element in every object store; it excludes '/', '.' (and
// so "..") and anything that needs escaping.
func ValidateGeneration(gen string) error {
	if len(gen) == 0 || len(gen) > MaxGenerationLen {
		return fmt.Errorf("segment: generation %q must be 1..%d bytes", gen, MaxGenerationLen)
	}
	for i := 0; i < len(gen); i++ {
		c := gen[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return fmt.Errorf("segment: generation %q has byte %q; allowed are [0-9A-Za-z_-]", gen, c)
		}
	}
	return nil
}
