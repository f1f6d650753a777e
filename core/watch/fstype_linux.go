package watch

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// zfsSuperMagic is OpenZFS's f_type; ZFS is not in the kernel, so it is
// not in its magic.h nor in x/sys/unix.
const zfsSuperMagic = 0x2fc12fc1

// trustedFSType reports whether a file system of type t (statfs f_type)
// notifies every write made through this kernel, which is every write to
// a local file system: its changes go through the kernel's VFS, which
// generates the events. Network file systems (NFS, CIFS/SMB, 9p) do not
// see other hosts' writes; FUSE does not see writes its daemon makes
// behind the kernel's back; overlayfs has reported events on the upper
// layer's inodes rather than the overlay's in some kernels, so it is left
// out too, as is every type not named here.
func trustedFSType(t uint32) bool {
	switch t {
	case unix.EXT4_SUPER_MAGIC, // also ext2 and ext3: one magic number
		unix.XFS_SUPER_MAGIC,
		unix.BTRFS_SUPER_MAGIC,
		unix.TMPFS_MAGIC,
		unix.F2FS_SUPER_MAGIC,
		unix.BCACHEFS_SUPER_MAGIC,
		zfsSuperMagic:
		return true
	}
	return false
}

// fsType is the statfs f_type of the file system holding dir. f_type is
// a signed word of the platform's size; the magic numbers are 32 bits.
func fsType(dir string) (uint32, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return uint32(st.Type), nil
}
