package segment

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sqlitereplicator/replicator/core/crypt"
)

// Encryption schemes, the header's encryption byte (doc.go, "Encryption").
const (
	EncryptionNone   = 0
	EncryptionAESGCM = 1 // AES-256-GCM, per-object key from HKDF-SHA256
)

// blockSealer seals and opens the blocks of one object. It is bound to the
// object's header, which it authenticates with every block.
type blockSealer interface {
	// Seal appends the sealed form of block, the index'th block of the
	// object, to dst and returns the result. rawLen and raw are the block
	// header's raw length and "stored uncompressed" flag, which the seal
	// authenticates too. It adds exactly Overhead bytes.
	Seal(dst, block []byte, index uint64, rawLen uint32, raw bool) []byte
	// Open appends the opened form of sealed to dst, or fails if sealed is
	// not the authentic block number index of this object with that raw
	// length and flag.
	Open(dst, sealed []byte, index uint64, rawLen uint32, raw bool) ([]byte, error)
	// Overhead is how many bytes Seal adds; at most maxSealOverhead.
	Overhead() int
}

// gcmSealer is scheme 1: AES-256-GCM under the object's own key (derived
// from the secret key and the header's salt), nonce = the block index, and
// associated data = the 128 header bytes, the raw length and the flag.
type gcmSealer struct {
	aead  cipher.AEAD
	ad    []byte // header || raw length || flag
	nonce []byte
}

// newGCMSealer returns the sealer for the object whose encoded header is
// hdr, under key.
func newGCMSealer(key *crypt.Key, hdr Header) (*gcmSealer, error) {
	aead, err := key.ObjectCipher(hdr.Salt[:])
	if err != nil {
		return nil, err
	}
	ad := make([]byte, HeaderSize+5)
	putHeader(ad, hdr)
	return &gcmSealer{aead: aead, ad: ad, nonce: make([]byte, aead.NonceSize())}, nil
}

func (s *gcmSealer) block(index uint64, rawLen uint32, raw bool) {
	// 12-byte nonce: 4 zero bytes, then the index. Unique within the
	// object, and no other object uses this AES key.
	binary.BigEndian.PutUint64(s.nonce[len(s.nonce)-8:], index)
	binary.BigEndian.PutUint32(s.ad[HeaderSize:], rawLen)
	s.ad[HeaderSize+4] = 0
	if raw {
		s.ad[HeaderSize+4] = 1
	}
}

func (s *gcmSealer) Seal(dst, block []byte, index uint64, rawLen uint32, raw bool) []byte {
	s.block(index, rawLen, raw)
	return s.aead.Seal(dst, s.nonce, block, s.ad)
}

func (s *gcmSealer) Open(dst, sealed []byte, index uint64, rawLen uint32, raw bool) ([]byte, error) {
	s.block(index, rawLen, raw)
	out, err := s.aead.Open(dst, s.nonce, sealed, s.ad)
	if err != nil {
		return nil, errors.New("authentication failed: the block, or the header, was altered or damaged")
	}
	return out, nil
}

func (s *gcmSealer) Overhead() int { return s.aead.Overhead() }

// writeSealer returns the sealer for a new object under key and sets the
// header's encryption fields, with a fresh salt; nil and hdr unchanged
// without a key.
func writeSealer(key *crypt.Key, hdr *Header) (blockSealer, error) {
	if key == nil {
		if hdr.Encryption != EncryptionNone {
			return nil, fmt.Errorf("segment: writing encryption scheme %d needs a key (WriterOptions.Key): %w", hdr.Encryption, errors.ErrUnsupported)
		}
		return nil, nil
	}
	salt, err := crypt.NewSalt()
	if err != nil {
		return nil, err
	}
	hdr.Encryption, hdr.KeyID, hdr.Salt = EncryptionAESGCM, key.ID(), salt
	return newGCMSealer(key, *hdr)
}

// readSealer returns the sealer that opens an object with header hdr, from
// keys; nil for an object that is not encrypted. Errors wrap
// crypt.ErrKeyRequired, crypt.ErrWrongKey or errors.ErrUnsupported.
func readSealer(keys *crypt.Keyring, hdr Header) (blockSealer, error) {
	switch hdr.Encryption {
	case EncryptionNone:
		return nil, nil
	case EncryptionAESGCM:
		key, err := keys.Find(hdr.KeyID)
		if err != nil {
			return nil, fmt.Errorf("segment: object %w", err)
		}
		return newGCMSealer(key, hdr)
	}
	return nil, fmt.Errorf("segment: object is sealed with encryption scheme %d, which this version does not know: %w",
		hdr.Encryption, errors.ErrUnsupported)
}
