// Package capture turns a live SQLite database in WAL mode into a chain of
// segments, never missing a committed transaction.
//
// The protocol (docs/design.md has the argument in full):
//
//   - The capturer always holds a read transaction on the database. SQLite
//     resets the WAL (starts writing it again from the top) only when every
//     frame was checkpointed and no reader pins a frame, and a checkpoint
//     never copies past the oldest reader's snapshot. Holding a reader that
//     began after the last capture therefore means that whatever a reset
//     may discard was captured before. To move its snapshot forward it
//     leapfrogs: begin a read on a second connection, then end the first.
//     Under the write lock (sync points, snapshots, checkpoints) it ends
//     and begins the read on one connection instead: nobody can reset the
//     WAL while the lock is ours. A capture that finds no reader held
//     since the last one (a read failed to begin again) catches up.
//
//   - Connections: only the held reader stays open. The second reader,
//     the connection that takes the write lock and the one a checkpoint
//     runs on are one spare, opened when needed and closed once unused for
//     a few seconds, and at the end of Open (each SQLite connection costs
//     about 100 KB idle, for every database the daemon replicates).
//
//   - Each Step reads the WAL from the last captured position, cuts it into
//     committed transactions (core/wal verifies salts and the checksum
//     chain), writes them as one segment to the local state directory
//     (durably), commits the new position, and leapfrogs.
//
//   - Continuity is checked on every step: the WAL still has the salts of
//     the position and the frame before it is unchanged (core/wal), or the
//     WAL was reset exactly once (salt-1 and the checkpoint sequence moved
//     by one), which the held reader guarantees happened only after
//     everything was captured. Anything else is a discontinuity.
//
//   - On a discontinuity, or at start-up when the WAL no longer continues
//     from the saved position (for example the application checkpointed
//     while the daemon was down), the capturer takes a sync point: for a
//     few milliseconds it holds the write lock, begins a fresh reader and
//     finds the end of the WAL; then, without the lock, it reads every page
//     of that snapshot and compares it with the per-page hashes of the last
//     captured state. The pages that differ become one catch-up transaction.
//     Only when that state is gone, the page size changed or the database
//     file was replaced does it start a new generation with a snapshot.
//
//   - Checkpoint keeps the WAL short without blocking the application for
//     long: a PASSIVE checkpoint (no lock), then, under the write lock, read
//     the tail into memory, end the reader, PASSIVE again, and begin a new
//     reader; the tail is staged after the lock is released (a tail never
//     staged is caught up from the page hashes). The next writer resets
//     the WAL.
package capture
