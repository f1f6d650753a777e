// Package wal reads and validates SQLite write-ahead log (WAL) files and cuts
// them into committed transactions. It is the lowest layer of change capture:
// everything replicated comes out of Scan, so this package implements the
// format exactly as SQLite's own crash recovery reads it
// (sqlite.org/fileformat2.html §4, and walIndexRecover in SQLite's wal.c),
// and its tests check it against real SQLite.
//
// # File layout
//
// A WAL file is a 32-byte header followed by frames laid back to back. Every
// integer in the header and in frame headers is a big-endian uint32,
// whatever the host or the checksum byte order.
//
//	offset  header field
//	0       magic: 0x377f0682 (little-endian checksums) or 0x377f0683 (big-endian)
//	4       format version: 3007000
//	8       page size: a power of two from 512 to 65536; 65536 is stored as
//	        65536 (unlike the database header, which stores it as 1)
//	12      checkpoint sequence number
//	16      salt-1
//	20      salt-2
//	24      checksum-1 \ checksum of bytes 0..23, seeded with (0, 0)
//	28      checksum-2 /
//
// Frame i (counting from 0) starts at 32 + i*(24+pageSize) and is a 24-byte
// frame header followed by one page image:
//
//	offset  frame field
//	0       page number (1-based; 0 never appears in a valid frame)
//	4       for a commit frame, the database size in pages after the
//	        commit; 0 for every other frame
//	8       salt-1 \ copies of the header's salts
//	12      salt-2 /
//	16      checksum-1 \ cumulative checksum, see below
//	20      checksum-2 /
//	24      page image (pageSize bytes)
//
// # Checksums
//
// The checksum (see Checksum) is a pair of 32-bit sums over the data read as
// 32-bit words, in the byte order given by the low bit of the magic: SQLite
// writes its native order, so x86 and ARM hosts write little-endian
// checksums, and any reader must accept both. The header checksum covers
// header bytes 0..23 starting from (0, 0). The checksums form a chain: each
// frame's checksum covers the first 8 bytes of its frame header (page number
// and commit field) and then its page image, starting from the previous
// frame's checksum, or from the header checksum for the first frame. So a
// frame's checksum vouches for every frame before it. Salts are not
// checksummed; they are compared instead.
//
// # Transactions
//
// A transaction is a run of frames ending with a commit frame (non-zero
// commit field); the database after it is the database before it with each
// page replaced by its last image in the run, truncated or extended to the
// commit field's size. Pages written but beyond that size are dropped, as
// SQLite's checkpoint drops them (Txn.Pages). When it pads the log to a
// sector boundary (synchronous=FULL on storage without powersafe
// overwrite), SQLite repeats the commit frame; every copy is itself a commit
// frame, so each comes out as a one-frame transaction rewriting the same
// page with the same content. Frames after the last commit
// frame belong to a transaction still being written: SQLite may still
// rewrite them in place, so they are never part of the committed log.
//
// # Resets
//
// Once a checkpoint has copied every frame into the database, the next
// writer restarts the log: it rewrites the header with the checkpoint
// sequence incremented, salt-1 incremented and a new random salt-2, then
// writes new frames from offset 32 over the old ones. The file is not
// necessarily truncated, so frames of the previous generation can follow the
// new ones. They still carry intact checksums, but the old salts, and their
// chain starts from the old header: the salt comparison is what stops them
// from being read as part of the new log. A TRUNCATE checkpoint instead cuts
// the file to zero bytes; a file shorter than a header, or with an invalid
// one, is an empty log to SQLite (ErrBadHeader here).
//
// # End of the valid log
//
// Frames are read in order from the header. The valid log ends at the first
// frame that is incomplete (a torn write or the end of the file), has page
// number 0, carries salts that differ from the header's, or whose checksum
// does not continue the chain. Nothing after that point is valid, even if it
// looks intact. The committed log ends just after the last commit frame
// within the valid log. These are exactly the rules of SQLite's recovery, so
// after a crash SQLite sees the same transactions Scan reports.
//
// # What Scan guarantees
//
// Scan delivers, in log order, every transaction in the committed log after
// its starting Position, and returns the Position just past the last one;
// Positions always sit on transaction boundaries. Resuming from the returned
// Position on a later call delivers the transactions committed since, each
// exactly once and never a partial one. Before resuming, Scan checks that
// the log still continues from the Position (same salts, and the frame
// before it still ends with the checksum the Position records); if the WAL
// was reset or rewritten in between it returns ErrReset instead of silently
// skipping or repeating anything. ReadPage re-verifies each frame it reads
// against the checksum seen by the scan, so page data read later can't come
// from a frame overwritten since.
//
// What Scan cannot do is bring back frames that a reset overwrote before
// they were read: ErrReset tells the caller that this happened (the changes
// are then in the database file, not the log), and a capture engine that
// must not miss a transaction either prevents resets past unread frames
// (for example by holding a read transaction, which stops checkpoints from
// restarting the log) or resynchronises from the database when it sees
// ErrReset.
//
// Scan reads in chunks of whole frames of up to about 1 MiB, runs in time
// linear in the bytes read, and holds no page data: its memory is one chunk
// plus a small Frame record per frame of the transaction at hand, whatever
// the size of the file.
package wal
