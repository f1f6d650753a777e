/*
Package segment implements the replica object format: the immutable files
that hold the page images of a SQLite database in object storage.

A segment holds the page images written by one or more consecutive
transactions of one generation (an unbroken chain of transactions that starts
at a snapshot), de-duplicated by page number (the last write wins) and sorted
by page number. A snapshot is a segment that holds every page of the database
as of one transaction. Objects are written once, never modified, and verified
on every read: nothing in this package hands out a byte that has not passed a
checksum, and a Reader reports io.EOF only after the whole object verified.

Both directions stream. A Writer buffers one block, a Reader one block plus
its stored form, so a multi-GiB snapshot needs a few MiB of memory at most.
Writer.Reset and Reader.Reset reuse those buffers and the (de)compressor
across objects, which matters for many small segments: setting up a zstd
encoder costs more than compressing a small segment.

# On-disk format, version 1

All integers are big-endian. "CRC-32C" is CRC-32 with the Castagnoli
polynomial (hash/crc32.Castagnoli). "xxHash64" is XXH64 with seed 0. An
object is a header, zero or more blocks, a terminator and a trailer, with
nothing after the trailer:

	object  = header block* terminator trailer

Header: HeaderSize (128) bytes, fixed layout, so that a ranged read of the
first 128 bytes of an object is enough to list its metadata (ReadHeader,
DecodeHeader):

	off  len  field
	  0    8  magic "\x89RPLSEG\n" (89 52 50 4c 53 45 47 0a); the high-bit
	          first byte and the trailing newline catch 7-bit and
	          text-mode transfers, as PNG's magic does
	  8    2  format version, 1. The magic and this field keep their place
	          in every version; everything after them may change with it.
	          Version 0 is corrupt, versions above 1 are unsupported.
	 10    1  kind: 1 = segment, 2 = snapshot
	 11    1  compression: 0 = none, 1 = lz4 (block format), 2 = zstd
	 12    1  encryption: 0 = none. Any other value names the scheme that
	          sealed every stored block (see Encryption below)
	 13    1  generation length G, 1..32
	 14    2  reserved, 0
	 16    4  page size P: a power of two, 512..65536
	 20    4  database size in pages after the last transaction
	 24    4  page count N: number of pages in the body, >= 1
	 28    4  key id when encryption != 0, else 0 (see Encryption)
	 32   32  generation id: G bytes of [0-9A-Za-z_-], then zeros
	 64    8  min txid, >= 1
	 72    8  max txid, >= min txid
	 80    8  commit time of the first transaction, int64 unix nanoseconds
	 88    8  commit time of the last transaction, int64 unix nanoseconds
	 96    8  database checksum before the first transaction
	104    8  database checksum after the last transaction
	112   12  salt when encryption != 0, else 0 (see Encryption)
	124    4  CRC-32C of bytes 0..123

Reserved bytes and generation padding must be zero: the encoding of a header
is canonical, so a reader that accepts it agrees with the writer on every
bit. Commit times are wall-clock readings and are not required to be ordered
in a segment (clocks step backwards); the two checksums are defined below.

Block: a run of 1..B page records, independently compressed, where
B = max(1, 1 MiB / P) (MaxBlockPages), which bounds a block's raw size by
MaxBlockRawSize (1 MiB + 8 KiB, reached at P = 512) for every page size:

	off  len  field
	  0    4  raw length R: a positive multiple of 4+P, at most B*(4+P)
	  4    4  stored word: bit 31 set = the stored bytes are the raw bytes
	          (uncompressed); bits 0..30 = stored length S
	  8    4  CRC-32C of the R raw bytes; 0 when encryption != 0
	 12    S  stored bytes

	raw     = record{R/(4+P)}
	record  = pgno (4 bytes) page (P bytes)

Without encryption, an uncompressed block has S == R, and a compressed block
has 0 < S < R: a writer stores a block raw whenever compression would not
make it smaller, and an object whose compression is "none" has only
uncompressed blocks. lz4 blocks use the lz4 block format (no frame); zstd
blocks are one or more complete zstd frames. Both decode to exactly R bytes
or the object is corrupt. The CRC covers the decoded bytes, so it checks the
decompressor as well as the medium, and lets a Reader hand out a block's
pages before the trailer arrives.

Page records are in strictly ascending pgno order across the whole body
(which also forbids duplicates), and every pgno is in 1..database size,
never the lock-byte page (LockPage). The body holds exactly N records. A
snapshot has min txid == max txid, equal commit times, equal checksums, and
N == the database size less the lock-byte page if the database reaches it;
so its records are exactly the pages 1..database size, and a Reader checks
that their checksum equals the header's.

Terminator and trailer, 28 bytes:

	off  len  field
	  0   12  terminator: a block header of all zeros (R == 0)
	 12    8  xxHash64 of every byte of the object before this field
	          (header, blocks and terminator)
	 20    8  end magic "\x89RPLEND\n" (89 52 50 4c 45 4e 44 0a)

The block CRCs find damage inside a block; the trailer hash binds the header
and the blocks together and detects lost, duplicated or reordered blocks and
truncation at a block boundary. Any violation of a rule on this page is
reported as an error wrapping ErrCorrupt (an I/O error of the source is
passed on wrapped, but not as ErrCorrupt). Readers check every length
against the bounds above before allocating, so a hostile object cannot grow
a Reader's buffers beyond MaxBlockRawSize + MaxBlockStoredSize, and the zstd
decoder is limited to MaxBlockRawSize of output per block.

# Database checksum

The database checksum is the XOR, over every page p in 1..database size
except the lock-byte page, of PageHash(p, page) = xxHash64(pgno as 4
big-endian bytes || page bytes). XOR makes it incremental: a transaction
that changes page p from old to new updates it by
sum ^= PageHash(p, old) ^ PageHash(p, new); a page added by growth is XORed
in and a page cut off by truncation is XORed out. So a replica can check,
segment after segment, that applying a segment to a database whose checksum
is "before" yields one whose checksum is "after", without re-reading the
whole database.

The per-page hash must not be linear, which is why it is xxHash64 and not a
CRC. A CRC is linear over GF(2): crc(a ^ d) ^ crc(a) depends on d only. If
the same corruption d hits two pages (a restore bug that clobbers the same
offset in every page, say), each page's term changes by the same amount and
the two changes cancel in the XOR. Likewise crc(pgno || page) splits into
a term for pgno and a term for the page, so swapping the contents of two
pages would leave the sum unchanged. A non-linear hash has no such
structure: cancellation needs a 64-bit collision.

The lock-byte page (the page holding byte offset 2^30 of the file) is left
out because SQLite never writes it, so it never appears in a WAL; a
checksum maintained from WAL frames could not include it, and a checksum
recomputed from a database file must not either.

# Encryption

The encryption byte names the scheme that sealed every stored block:
0 = none, 1 = AES-256-GCM (EncryptionAESGCM). Other values are reserved:
their headers still decode, so objects can be listed, but a Reader refuses
them with errors.ErrUnsupported. With encryption 0, the header bytes 28..31
and 112..123 are zero. With encryption 1 they hold:

	off  len  field
	 28    4  key id: HKDF-SHA256(secret key, no salt, info
	          "replicator key id v1"), 4 bytes. Public: it names the key
	          (8 hex digits) without revealing it
	112   12  salt: 12 random bytes, fresh for every object

Each object has its own AES-256 key, HKDF-SHA256(secret key, salt, info
"replicator segment aes-256-gcm v1"), 32 bytes (core/crypt). A block is
sealed with AES-GCM under that key with:

  - nonce: 4 zero bytes, then the block's index as 8 bytes (0 for the
    first block). An index is used once per object and no two objects
    share an AES key (a salt collision needs about 2^48 objects of one
    secret key), so a (key, nonce) pair never repeats;
  - plaintext: the block's stored bytes as they would be without
    encryption (compressed, or raw when compression did not help);
  - associated data: the 128 header bytes, then the block's raw length R
    (4 bytes) and one byte that is 1 when the block is stored raw, else 0.

The stored bytes S are the GCM output, ciphertext and 16-byte tag: S is
the opened length plus 16, at most R + 256 (maxSealOverhead bounds what a
Reader allocates). Bit 31 of the stored word still says whether the opened
bytes are compressed, and the CRC field is 0, because a checksum of the
plaintext in the clear would leak information about it; the tag checks the
block instead, and a Reader hands out no page of a block before its tag
verified. Binding the header detects any change to it (a header of another
object, a changed txid range or checksum); the index detects reordered or
duplicated blocks; the header's page count detects blocks removed at the
end; the per-object key detects blocks spliced in from other objects. The
trailer hash is computed as for any object.

A Reader opens an encrypted object with the key whose id the header names,
from the keyring it was given (ReaderOptions.Keys). Without keys it fails
with an error wrapping crypt.ErrKeyRequired, and with keys none of which
has that id, crypt.ErrWrongKey; both name the key the object needs and are
not ErrCorrupt, since the object may be intact. A failed tag is ErrCorrupt.

What stays in the clear: the header (so metadata can be listed without a
key: kind, compression, page size, generation, txids, database size, commit
times, database checksums, page count, key id), each block's raw length and
stored length (so page counts per block and compressed sizes), the
trailer, and the object's name and size. The page contents are sealed.

# Object names

An object's key is derived from what it holds (names.go): a snapshot is
generations/<generation>/snapshots/<txid:016x>.snapshot and a segment is
generations/<generation>/segments/<level>/<min:016x>-<max:016x>.segment,
level 0..9, under the replica's path. Hex digits are lowercase and
zero-padded to 16, so keys sort in txid order.
*/
package segment
