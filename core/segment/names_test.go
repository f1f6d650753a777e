package segment

import (
	"strings"
	"testing"
)

func TestSnapshotName(t *testing.T) {
	if got := SnapshotName(0x1f); got != "000000000000001f.snapshot" {
		t.Fatalf("SnapshotName = %q", got)
	}
	for _, txid := range []uint64{1, 0xabcdef, ^uint64(0)} {
		got, err := ParseSnapshotName(SnapshotName(txid))
		if err != nil || got != txid {
			t.Errorf("round trip %d: %d, %v", txid, got, err)
		}
	}
	for _, bad := range []string{
		"",
		".snapshot",
		"000000000000001f",
		"000000000000001F.snapshot",  // uppercase
		"00000000000001f.snapshot",   // 15 digits
		"0000000000000001f.snapshot", // 17 digits
		"0000000000000000.snapshot",  // txid 0
		"+00000000000001f.snapshot",
		"000000000000001g.snapshot",
		"000000000000001f.snapshot.tmp",
		"000000000000001f.segment",
		"x/000000000000001f.snapshot",
	} {
		if _, err := ParseSnapshotName(bad); err == nil {
			t.Errorf("ParseSnapshotName(%q) accepted", bad)
		}
	}
}

func TestSegmentName(t *testing.T) {
	if got := SegmentName(1, 0x10); got != "0000000000000001-0000000000000010.segment" {
		t.Fatalf("SegmentName = %q", got)
	}
	for _, r := range [][2]uint64{{1, 1}, {5, 9}, {1, ^uint64(0)}} {
		min, max, err := ParseSegmentName(SegmentName(r[0], r[1]))
		if err != nil || min != r[0] || max != r[1] {
			t.Errorf("round trip %v: %d-%d, %v", r, min, max, err)
		}
	}
	for _, bad := range []string{
		"",
		"0000000000000001-0000000000000010",
		"0000000000000001_0000000000000010.segment",
		"0000000000000010-0000000000000001.segment", // min > max
		"0000000000000000-0000000000000001.segment", // txid 0
		"0000000000000001-000000000000001A.segment",
		"000000000000001-00000000000000010.segment",
		"0000000000000001-0000000000000010.snapshot",
		"0000000000000001-0000000000000010.segment.tmp",
	} {
		if _, _, err := ParseSegmentName(bad); err == nil {
			t.Errorf("ParseSegmentName(%q) accepted", bad)
		}
	}
}

func TestKeys(t *testing.T) {
	k, err := SnapshotKey("g1", 2)
	if err != nil || k != "generations/g1/snapshots/0000000000000002.snapshot" {
		t.Errorf("SnapshotKey = %q, %v", k, err)
	}
	k, err = SegmentKey("g1", 3, 2, 4)
	if err != nil || k != "generations/g1/segments/3/0000000000000002-0000000000000004.segment" {
		t.Errorf("SegmentKey = %q, %v", k, err)
	}
	for _, lvl := range []int{-1, MaxLevel + 1} {
		if _, err := SegmentKey("g1", lvl, 1, 1); err == nil {
			t.Errorf("SegmentKey accepted level %d", lvl)
		}
	}
	for _, gen := range []string{"", "..", "a/b", "a b", "é", strings.Repeat("x", 33)} {
		if _, err := SnapshotKey(gen, 1); err == nil {
			t.Errorf("SnapshotKey accepted generation %q", gen)
		}
		if _, err := SegmentKey(gen, 0, 1, 1); err == nil {
			t.Errorf("SegmentKey accepted generation %q", gen)
		}
	}
	if err := ValidateGeneration("AZaz09_-" + strings.Repeat("x", 24)); err != nil {
		t.Error(err)
	}
}
