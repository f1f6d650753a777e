package localstate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/sqlitereplicator/replicator/core/segment"
)

// StagedSegment is a captured segment waiting in the state directory.
type StagedSegment struct {
	Generation string
	Min, Max   uint64
	Path       string
	Size       int64
	// Snapshot is set for a snapshot (Min == Max == its txid).
	Snapshot bool
}

func (d *Dir) segmentDir(gen string) string { return filepath.Join(d.path, "segments", gen) }

// StageSegment durably writes a segment of generation gen holding
// transactions min..max, produced by write.
func (d *Dir) StageSegment(gen string, min, max uint64, write func(io.Writer) error) (StagedSegment, error) {
	dir := d.segmentDir(gen)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return StagedSegment{}, fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, segment.SegmentName(min, max))
	if err := writeAtomic(path, write); err != nil {
		return StagedSegment{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return StagedSegment{}, err
	}
	return StagedSegment{Generation: gen, Min: min, Max: max, Path: path, Size: fi.Size()}, nil
}

// Segments lists the staged segments of gen in txid order.
func (d *Dir) Segments(gen string) ([]StagedSegment, error) {
	return d.list(gen, false, func(name string) (uint64, uint64, error) { return segment.ParseSegmentName(name) })
}

// list returns the staged objects of gen whose names parse, in txid order.
func (d *Dir) list(gen string, snapshot bool, parse func(string) (min, max uint64, err error)) ([]StagedSegment, error) {
	entries, err := os.ReadDir(d.segmentDir(gen))
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []StagedSegment
	for _, e := range entries {
		min, max, err := parse(e.Name())
		if err != nil {
			continue // another kind of object, or a temporary file of an interrupted write
		}
		fi, err := e.Info()
		if isNotExist(err) {
			continue // removed by a concurrent clean-up
		}
		if err != nil {
			return nil, err
		}
		out = append(out, StagedSegment{Generation: gen, Min: min, Max: max, Path: filepath.Join(d.segmentDir(gen), e.Name()), Size: fi.Size(), Snapshot: snapshot})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Min < out[j].Min })
	return out, nil
}

// Generations lists the generations that have staged segments.
func (d *Dir) Generations() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(d.path, "segments"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// RemoveSegment deletes a staged segment.
func (d *Dir) RemoveSegment(s StagedSegment) error {
	if err := os.Remove(s.Path); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

// RemoveGeneration deletes every staged segment of gen.
func (d *Dir) RemoveGeneration(gen string) error {
	return os.RemoveAll(d.segmentDir(gen))
}

// Size returns the bytes the staged segments take.
func (d *Dir) Size() (int64, error) {
	var n int64
	err := filepath.Walk(filepath.Join(d.path, "segments"), func(_ string, fi os.FileInfo, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walked (a temporary file, a cleaned-up segment)
		}
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// StageSnapshot durably writes the snapshot of generation gen at txid.
func (d *Dir) StageSnapshot(gen string, txid uint64, write func(io.Writer) error) (StagedSegment, error) {
	dir := d.segmentDir(gen)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return StagedSegment{}, fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, segment.SnapshotName(txid))
	if err := writeAtomic(path, write); err != nil {
		return StagedSegment{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return StagedSegment{}, err
	}
	return StagedSegment{Generation: gen, Min: txid, Max: txid, Path: path, Size: fi.Size(), Snapshot: true}, nil
}

// Snapshots lists the staged snapshots of gen in txid order.
func (d *Dir) Snapshots(gen string) ([]StagedSegment, error) {
	return d.list(gen, true, func(name string) (uint64, uint64, error) {
		txid, err := segment.ParseSnapshotName(name)
		return txid, txid, err
	})
}
