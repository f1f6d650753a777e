package crypt

import (
	"encoding/hex"
	"testing"
)

// TestKnownAnswers pins the derivations, which are part of the object
// format: a change here makes every existing encrypted replica unreadable,
// so it must fail loudly. The expected values were computed once with
// this code and cross-checked against HKDF-SHA256 (RFC 5869) in Python's
// cryptography package.
func TestKnownAnswers(t *testing.T) {
	secret := make([]byte, KeySize)
	for i := range secret {
		secret[i] = byte(i)
	}
	k, err := NewKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.ID().String(); got != wantID {
		t.Errorf("key id %s, want %s", got, wantID)
	}
	salt := make([]byte, SaltSize)
	for i := range salt {
		salt[i] = byte(0xa0 + i)
	}
	aead, err := k.ObjectCipher(salt)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	got := hex.EncodeToString(aead.Seal(nil, nonce, []byte("replicator"), []byte("header")))
	if got != wantSealed {
		t.Errorf("sealed %s, want %s", got, wantSealed)
	}
}

const (
	wantID     = "d850b0b4"
	wantSealed = "555fa6a7da28357b2d7176b8155354442d4c42d12d2601ba486f"
)
