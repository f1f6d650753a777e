package crypt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	secret := bytes.Repeat([]byte{0xab, 0x01}, KeySize/2)
	want, err := NewKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	hexText := strings.Repeat("ab01", KeySize/2)
	tests := []struct {
		name, text string
		ok         bool
	}{
		{"hex", hexText, true},
		{"hex upper case with newline", strings.ToUpper(hexText) + "\n", true},
		{"base64", base64.StdEncoding.EncodeToString(secret), true},
		{"base64 url unpadded", base64.RawURLEncoding.EncodeToString(secret), true},
		{"empty", "", false},
		{"short hex", hexText[:62], false},
		{"not hex", "zz" + hexText[2:], false},
		{"base64 of 31 bytes", base64.StdEncoding.EncodeToString(secret[:31]), false},
		{"base64 of 33 bytes", base64.StdEncoding.EncodeToString(append(secret, 1)), false},
		{"two keys on a line", hexText + " " + hexText, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.text)
			if !tt.ok {
				if err == nil {
					t.Fatal("accepted")
				}
				if !strings.Contains(err.Error(), "64 hex digits") || (len(tt.text) > 8 && strings.Contains(err.Error(), tt.text[:8])) {
					t.Fatalf("error %q should name the format and not echo the text", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.ID() != want.ID() || k.Text() != hexText {
				t.Fatalf("parsed %v (%s), want %v", k, k.Text(), want)
			}
		})
	}
}

// TestKeyNeverPrinted checks that formatting a key shows its id only.
func TestKeyNeverPrinted(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%s", "%+v", "%#v"} {
		out := fmt.Sprintf(verb, k)
		if strings.Contains(out, k.Text()) || strings.Contains(out, k.Text()[:16]) || !strings.Contains(out, k.ID().String()) {
			t.Errorf("%s prints %q", verb, out)
		}
	}
}

func TestKeyIDsAndCiphers(t *testing.T) {
	a, _ := GenerateKey()
	b, _ := GenerateKey()
	if a.ID() == b.ID() || a.Text() == b.Text() {
		t.Fatal("two generated keys are equal")
	}
	again, err := ParseKey(a.Text())
	if err != nil || again.ID() != a.ID() {
		t.Fatalf("round trip of the text form: %v, %v", again, err)
	}
	s1, _ := NewSalt()
	s2, _ := NewSalt()
	if s1 == s2 {
		t.Fatal("two salts are equal")
	}
	c1, err := a.ObjectCipher(s1[:])
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, c1.NonceSize())
	sealed := c1.Seal(nil, nonce, []byte("page"), nil)
	for _, other := range []struct {
		name string
		k    *Key
		salt []byte
	}{{"other salt", a, s2[:]}, {"other key", b, s1[:]}} {
		c, _ := other.k.ObjectCipher(other.salt)
		if _, err := c.Open(nil, nonce, sealed, nil); err == nil {
			t.Errorf("%s opens the object", other.name)
		}
	}
	if got, err := again.ObjectCipher(s1[:]); err != nil {
		t.Fatal(err)
	} else if p, err := got.Open(nil, nonce, sealed, nil); err != nil || string(p) != "page" {
		t.Fatalf("same key and salt: %q, %v", p, err)
	}
	if _, err := a.ObjectCipher(s1[:4]); err == nil {
		t.Error("a short salt was accepted")
	}
}

func TestKeyring(t *testing.T) {
	a, _ := GenerateKey()
	b, _ := GenerateKey()
	c, _ := GenerateKey()
	kr, err := NewKeyring(a, b, a)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Primary() != a || kr.Len() != 2 || kr.IDs() != a.ID().String()+", "+b.ID().String() {
		t.Fatalf("keyring: primary %v, %d keys: %s", kr.Primary(), kr.Len(), kr.IDs())
	}
	if k, err := kr.Find(b.ID()); err != nil || k != b {
		t.Fatalf("Find(b): %v, %v", k, err)
	}
	_, err = kr.Find(c.ID())
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "encrypted with key "+c.ID().String()+", you gave keys "+kr.IDs()) {
		t.Fatalf("Find(c): %v", err)
	}
	var none *Keyring
	if _, err := none.Find(c.ID()); !errors.Is(err, ErrKeyRequired) || !strings.Contains(err.Error(), c.ID().String()) {
		t.Fatalf("nil keyring: %v", err)
	}
	if none.Primary() != nil || none.Len() != 0 {
		t.Fatal("nil keyring has keys")
	}
	twin := &Key{id: a.ID(), secret: b.secret}
	if _, err := NewKeyring(a, twin); err == nil || !strings.Contains(err.Error(), "share the id") {
		t.Fatalf("two keys with one id: %v", err)
	}
	if _, err := NewKeyring(); err == nil {
		t.Fatal("an empty keyring was made")
	}
}

func TestLoad(t *testing.T) {
	a, _ := GenerateKey()
	b, _ := GenerateKey()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	one := write("one.key", a.Text()+"\n")
	ring := write("ring.key", "# new key, since 2026-11\n"+b.Text()+"\n\n# old key\n  "+a.Text()+"  \n")
	bad := write("bad.key", "# a key\n"+a.Text()+"\nnot-a-key\n")
	empty := write("empty.key", "# nothing\n\n")
	t.Setenv("TEST_KEY_A", a.Text())
	t.Setenv("TEST_KEYS", b.Text()+", "+a.Text())
	t.Setenv("TEST_KEY_BAD", "hunter2")
	t.Setenv("TEST_KEY_EMPTY", "")

	tests := []struct {
		name        string
		files, envs []string
		want        []*Key // nil: no keyring
		err         string
	}{
		{"nothing", nil, nil, nil, ""},
		{"one file", []string{one}, nil, []*Key{a}, ""},
		{"keyring file", []string{ring}, nil, []*Key{b, a}, ""},
		{"env", nil, []string{"TEST_KEY_A"}, []*Key{a}, ""},
		{"env with two keys", nil, []string{"TEST_KEYS"}, []*Key{b, a}, ""},
		{"file then env", []string{one}, []string{"TEST_KEYS"}, []*Key{a, b}, ""},
		{"bad line", []string{bad}, nil, nil, "key file " + bad + " line 3: not a key: want 64 hex digits"},
		{"no key in file", []string{empty}, nil, nil, "key file " + empty + " holds no key"},
		{"missing file", []string{filepath.Join(dir, "missing")}, nil, nil, "read key file"},
		{"bad env", nil, []string{"TEST_KEY_BAD"}, nil, "environment variable TEST_KEY_BAD, key 1: not a key"},
		{"empty env", nil, []string{"TEST_KEY_EMPTY"}, nil, "environment variable TEST_KEY_EMPTY is empty or not set"},
		{"unset env", nil, []string{"TEST_KEY_UNSET_ANYWHERE"}, nil, "TEST_KEY_UNSET_ANYWHERE is empty or not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := Load(tt.files, tt.envs)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error echoes the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if kr.Len() != len(tt.want) {
				t.Fatalf("%d keys (%s), want %d", kr.Len(), kr.IDs(), len(tt.want))
			}
			for i, k := range tt.want {
				if kr.keys[i].ID() != k.ID() {
					t.Fatalf("key %d is %v, want %v", i, kr.keys[i], k)
				}
			}
		})
	}
	if kr, err := LoadKey(one, ""); err != nil || kr.Primary().ID() != a.ID() {
		t.Fatalf("LoadKey(file): %v, %v", kr, err)
	}
	if kr, err := LoadKey("", "TEST_KEY_A"); err != nil || kr.Primary().ID() != a.ID() {
		t.Fatalf("LoadKey(env): %v, %v", kr, err)
	}
	if kr, err := LoadKey("", ""); err != nil || kr != nil {
		t.Fatalf("LoadKey of nothing: %v, %v", kr, err)
	}
}
