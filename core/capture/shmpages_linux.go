package capture

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// indexPages drops from this process's resident memory the pages of its
// mappings of a WAL index file. They stay in the page cache, shared with
// the application, and SQLite's next access maps them again with the
// file's current contents: MADV_DONTNEED on a shared file mapping only
// removes this process's page table entries (madvise(2)).
//
// The mappings are SQLite's: it maps the index 32 KB at a time, and unmaps
// them only when the process's last connection to the database closes.
// The caller must keep a connection open from the first drop to the last;
// a range unmapped behind our back could by then be someone else's memory.
// As a second guard each remembered range is checked, before it is
// dropped, to still be a mapping of the same file at the same addresses
// (/proc/self/map_files names it), and all are found again in
// /proc/self/maps, which costs about a millisecond with 1,000 databases,
// only when that check fails or the file has grown.
type indexPages struct {
	path   string
	ino    uint64
	size   int64
	ranges []mappedRange
}

type mappedRange struct {
	lo, hi uint64
	file   string // as /proc/self/maps names it
}

func newIndexPages(shm string) *indexPages { return &indexPages{path: shm} }

func (p *indexPages) drop() error {
	var st unix.Stat_t
	if err := unix.Stat(p.path, &st); err != nil {
		return fmt.Errorf("stat %s: %w", p.path, err)
	}
	if st.Ino != p.ino || st.Size != p.size || !p.mapped() {
		if err := p.find(st); err != nil {
			return err
		}
	}
	for _, r := range p.ranges {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(r.lo), uintptr(r.hi-r.lo), unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("release the pages of %s: %w", p.path, errno)
		}
	}
	return nil
}

// mapped reports whether every remembered range is still mapped, exactly,
// from the file it was.
func (p *indexPages) mapped() bool {
	for _, r := range p.ranges {
		link, err := os.Readlink(fmt.Sprintf("/proc/self/map_files/%x-%x", r.lo, r.hi))
		if err != nil || link != r.file {
			return false
		}
	}
	return len(p.ranges) > 0
}

// find reads the process's shared mappings of the file st describes.
func (p *indexPages) find(st unix.Stat_t) error {
	p.ino, p.size, p.ranges = st.Ino, st.Size, p.ranges[:0]
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("read the process's mappings: %w", err)
	}
	dev := fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev))
	ino := strconv.FormatUint(st.Ino, 10)
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// start-end perms offset dev inode path; the path may hold spaces.
		var f [5]string
		rest := sc.Text()
		for i := range f {
			f[i], rest, _ = strings.Cut(strings.TrimLeft(rest, " "), " ")
		}
		file := strings.TrimLeft(rest, " ")
		if f[3] != dev || f[4] != ino || len(f[1]) != 4 || f[1][3] != 's' || file == "" {
			continue
		}
		start, end, _ := strings.Cut(f[0], "-")
		lo, err1 := strconv.ParseUint(start, 16, 64)
		hi, err2 := strconv.ParseUint(end, 16, 64)
		if err1 == nil && err2 == nil && lo < hi {
			p.ranges = append(p.ranges, mappedRange{lo: lo, hi: hi, file: file})
		}
	}
	return sc.Err()
}
