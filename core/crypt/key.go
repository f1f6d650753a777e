// Package crypt holds the keys of client-side encryption: 256-bit secret
// keys, their public ids, the keyring a reader tries them from, and the
// text forms a key takes in a key file or an environment variable.
//
// The cipher is AES-256-GCM from the standard library. A key never encrypts
// anything itself: every object gets its own AES key, derived from the
// secret and a random per-object salt with HKDF-SHA256 (ObjectCipher), so
// that GCM's nonce can be a plain block counter without ever repeating
// under one AES key. How objects use this is specified in core/segment's
// doc.go ("Encryption").
package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a secret key in bytes (AES-256).
const KeySize = 32

// SaltSize is the size of the per-object salt ObjectCipher takes.
const SaltSize = 12

// IDSize is the size of a key id.
const IDSize = 4

// HKDF info strings. They separate the uses of one secret, and are part of
// the format: changing one makes every existing object unreadable.
const (
	infoID     = "replicator key id v1"
	infoObject = "replicator segment aes-256-gcm v1"
)

// Sentinel errors callers branch on. Neither is corruption: the object may
// be intact, the reader just lacks its key.
var (
	// ErrKeyRequired: an encrypted object was read without any key.
	ErrKeyRequired = errors.New("no key was given")
	// ErrWrongKey: an encrypted object was read with keys, none of which
	// encrypted it.
	ErrWrongKey = errors.New("wrong key")
)

// ID is the public name of a key: derived from the secret with HKDF, so it
// reveals nothing about the secret, and stored in every object's header so
// that a reader can say which key an object needs. Printed as 8 hex digits.
type ID [IDSize]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Key is a secret key and its id. The zero Key is not usable; make one with
// GenerateKey, ParseKey or NewKey. String and the fmt verbs print only the
// id, so logging a Key cannot leak it.
type Key struct {
	secret [KeySize]byte
	id     ID
}

// NewKey returns the key with the given secret, which must be KeySize bytes.
func NewKey(secret []byte) (*Key, error) {
	if len(secret) != KeySize {
		return nil, fmt.Errorf("crypt: a key has %d bytes, not %d", KeySize, len(secret))
	}
	k := &Key{}
	copy(k.secret[:], secret)
	id, err := hkdf.Key(sha256.New, k.secret[:], nil, infoID, IDSize)
	if err != nil {
		return nil, fmt.Errorf("crypt: deriving key id: %w", err)
	}
	copy(k.id[:], id)
	return k, nil
}

// GenerateKey returns a new random key.
func GenerateKey() (*Key, error) {
	var b [KeySize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("crypt: reading random bytes: %w", err)
	}
	return NewKey(b[:])
}

// ID returns the key's public id.
func (k *Key) ID() ID { return k.id }

// String names the key by its id; it never prints the secret.
func (k *Key) String() string { return "key " + k.id.String() }

// GoString keeps %#v from printing the secret too.
func (k *Key) GoString() string { return k.String() }

// Text returns the key's text form, 64 lowercase hex digits: what a key
// file holds and ParseKey reads.
func (k *Key) Text() string { return hex.EncodeToString(k.secret[:]) }

// keyFormat describes the accepted text forms, for error messages.
const keyFormat = "64 hex digits or 44 base64 characters (32 bytes; `replicator keygen` makes one)"

// ParseKey parses the text form of a key: 64 hex digits, or the standard or
// URL base64 encoding of 32 bytes (with or without padding). Surrounding
// space is ignored. The error never repeats the text, which may be a
// mistyped secret.
func ParseKey(text string) (*Key, error) {
	s := strings.TrimSpace(text)
	var b []byte
	var err error
	switch {
	case len(s) == 2*KeySize:
		b, err = hex.DecodeString(s)
	case len(s) == 43 || len(s) == 44:
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err = enc.Strict().DecodeString(s); err == nil {
				break
			}
		}
	default:
		err = fmt.Errorf("%d characters", len(s))
	}
	if err == nil && len(b) != KeySize {
		err = fmt.Errorf("%d bytes", len(b))
	}
	if err != nil {
		return nil, fmt.Errorf("not a key: want %s", keyFormat)
	}
	return NewKey(b)
}

// ObjectCipher returns the AES-256-GCM cipher of one object: its AES key is
// HKDF-SHA256(secret, salt, info "replicator segment aes-256-gcm v1"). A
// fresh random salt per object (NewSalt) makes every object's AES key
// different, so nonces need only be unique within an object.
func (k *Key) ObjectCipher(salt []byte) (cipher.AEAD, error) {
	if len(salt) != SaltSize {
		return nil, fmt.Errorf("crypt: salt of %d bytes, want %d", len(salt), SaltSize)
	}
	ok, err := hkdf.Key(sha256.New, k.secret[:], salt, infoObject, KeySize)
	if err != nil {
		return nil, fmt.Errorf("crypt: deriving an object key: %w", err)
	}
	block, err := aes.NewCipher(ok)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	return aead, nil
}

// NewSalt returns a random per-object salt. 96 random bits: two objects of
// one key share an AES key with probability about n²/2^97 for n objects.
func NewSalt() ([SaltSize]byte, error) {
	var s [SaltSize]byte
	if _, err := rand.Read(s[:]); err != nil {
		return s, fmt.Errorf("crypt: reading random bytes: %w", err)
	}
	return s, nil
}
