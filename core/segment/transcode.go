package segment

import (
	"errors"
	"fmt"
	"io"

	"github.com/sqlitereplicator/replicator/core/crypt"
)

// Transcode reads the object in src with ropts and writes it again to dst
// with wopts, keeping its header (compression included) but for the
// encryption fields, which wopts.Key decides. It is how a replica encrypts
// a staged plaintext object on its way to storage. src is verified in full:
// if it is damaged, dst receives an incomplete object and the error wraps
// ErrCorrupt.
func Transcode(dst io.Writer, src io.Reader, ropts ReaderOptions, wopts WriterOptions) (Header, error) {
	r, err := NewReaderOptions(src, ropts)
	if err != nil {
		return Header{}, err
	}
	hdr := r.Header()
	hdr.Encryption, hdr.KeyID, hdr.Salt = EncryptionNone, crypt.ID{}, [crypt.SaltSize]byte{}
	w, err := NewWriter(dst, hdr, wopts)
	if err != nil {
		return Header{}, err
	}
	for {
		pgno, page, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Header{}, fmt.Errorf("segment: transcoding: %w", err)
		}
		if err := w.WritePage(pgno, page); err != nil {
			return Header{}, err
		}
	}
	return w.Header(), w.Close()
}

// Seal writes the plaintext object in src to dst encrypted under key,
// block for block: each block is verified as a Reader verifies it, and its
// stored bytes are sealed as they are, so nothing is compressed again
// (Transcode would decompress and compress every block). It is how a
// replica encrypts a staged object on its way to storage. A damaged src
// leaves an incomplete object in dst and an error wrapping ErrCorrupt.
func Seal(dst io.Writer, src io.Reader, key *crypt.Key) (Header, error) {
	if key == nil {
		return Header{}, errors.New("segment: Seal needs a key")
	}
	r, err := NewReader(src)
	if err != nil {
		return Header{}, err
	}
	w, err := NewWriter(dst, r.Header(), WriterOptions{Key: key})
	if err != nil {
		return Header{}, err
	}
	for {
		err := r.readBlock()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Header{}, fmt.Errorf("segment: sealing: %w", err)
		}
		if err := w.copyBlock(r.raw, r.body, r.compressed); err != nil {
			return Header{}, err
		}
	}
	return w.Header(), w.Close()
}
