package segment

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/sqlitereplicator/replicator/core/crypt"
)

// goldenKey is the key of the encrypted golden file: bytes 0..31, written
// out here so that no other helper can change it.
func goldenKey(t testing.TB) *crypt.Key {
	secret := make([]byte, crypt.KeySize)
	for i := range secret {
		secret[i] = byte(i)
	}
	k, err := crypt.NewKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestGoldenEncrypted keeps an encrypted object of this format version
// readable: the file was written once (with -update) under goldenKey with a
// random salt, so unlike the plaintext goldens it cannot be compared with
// fresh encoder output; it must decode to the golden snapshot's header and
// pages, and its layout must match doc.go's "Encryption".
func TestGoldenEncrypted(t *testing.T) {
	gc := goldenCases()[1] // the uncompressed snapshot: a layout by hand
	const file = "snapshot-none-512-aesgcm.snap"
	path := filepath.Join("testdata", file)
	key := goldenKey(t)
	if *update {
		if err := os.WriteFile(path, encode(t, gc.hdr, WriterOptions{Key: key}, gc.pages()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	keys, err := crypt.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	hdr, pages, err := decodeKeys(golden, keys)
	if err != nil {
		t.Fatalf("decoding golden file: %v", err)
	}
	want := gc.hdr
	want.Encryption, want.KeyID, want.Salt = EncryptionAESGCM, key.ID(), hdr.Salt
	if hdr != want || hdr.Salt == ([crypt.SaltSize]byte{}) {
		t.Fatalf("golden header:\n got %+v\nwant %+v", hdr, want)
	}
	equalPages(t, pages, gc.pages())

	const raw = 4 * (4 + 512)
	if want := HeaderSize + blockHeaderSize + raw + 16 + TrailerSize; len(golden) != want {
		t.Fatalf("size %d, want %d", len(golden), want)
	}
	checks := []struct {
		off  int
		want []byte
	}{
		{12, []byte{1}},                      // encryption: AES-256-GCM
		{28, []byte{0xd8, 0x50, 0xb0, 0xb4}}, // key id of goldenKey (core/crypt's known answer)
		{112, hdr.Salt[:]},
		{HeaderSize, []byte{0, 0, 0x08, 0x10, 0x80, 0, 0x08, 0x20, 0, 0, 0, 0}}, // raw 2064, raw flag | 2064+16, CRC 0
	}
	for _, c := range checks {
		if got := golden[c.off : c.off+len(c.want)]; !bytes.Equal(got, c.want) {
			t.Errorf("offset %d: % x, want % x", c.off, got, c.want)
		}
	}
	// The first page is sealed: its bytes are nowhere in the file.
	if bytes.Contains(golden, goldenPage(1)[:32]) {
		t.Error("the golden file holds plaintext")
	}
	if binary.BigEndian.Uint32(golden[HeaderSize+8:]) != 0 {
		t.Error("a sealed block carries a CRC")
	}
}
