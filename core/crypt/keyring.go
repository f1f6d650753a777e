package crypt

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Keyring is an ordered set of keys: the first encrypts what is written,
// all of them decrypt what is read. Several keys are how a key is rotated:
// put the new key first and keep the old ones until no object needs them.
// A nil *Keyring is valid and holds no key. A Keyring is immutable and safe
// for concurrent use.
type Keyring struct {
	keys []*Key
}

// NewKeyring returns a keyring of keys, in order; the first is the primary.
// A key given twice is kept once. Two different keys with the same id are
// refused: a reader could not tell which one an object needs.
func NewKeyring(keys ...*Key) (*Keyring, error) {
	kr := &Keyring{}
	for _, k := range keys {
		if k == nil {
			return nil, errors.New("crypt: nil key")
		}
		if old := kr.Lookup(k.id); old != nil {
			if old.secret != k.secret {
				return nil, fmt.Errorf("crypt: two different keys share the id %s; generate a new key to replace one of them", k.id)
			}
			continue
		}
		kr.keys = append(kr.keys, k)
	}
	if len(kr.keys) == 0 {
		return nil, errors.New("crypt: a keyring needs at least one key")
	}
	return kr, nil
}

// Primary returns the key that encrypts new objects, or nil for a nil or
// empty keyring.
func (kr *Keyring) Primary() *Key {
	if kr == nil || len(kr.keys) == 0 {
		return nil
	}
	return kr.keys[0]
}

// Lookup returns the key with id, or nil.
func (kr *Keyring) Lookup(id ID) *Key {
	if kr == nil {
		return nil
	}
	for _, k := range kr.keys {
		if k.id == id {
			return k
		}
	}
	return nil
}

// Len returns the number of keys.
func (kr *Keyring) Len() int {
	if kr == nil {
		return 0
	}
	return len(kr.keys)
}

// IDs returns the ids of the keys, primary first, joined with ", ", for
// messages.
func (kr *Keyring) IDs() string {
	if kr == nil {
		return ""
	}
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.id.String()
	}
	return strings.Join(ids, ", ")
}

// Find returns the key an object encrypted with key id needs, or an error
// wrapping ErrKeyRequired (no keys) or ErrWrongKey (none matches) that says
// which key the object needs and which ones were given.
func (kr *Keyring) Find(id ID) (*Key, error) {
	if kr.Len() == 0 {
		return nil, fmt.Errorf("encrypted with key %s: %w", id, ErrKeyRequired)
	}
	if k := kr.Lookup(id); k != nil {
		return k, nil
	}
	given := "key " + kr.IDs()
	if kr.Len() > 1 {
		given = "keys " + kr.IDs()
	}
	return nil, fmt.Errorf("encrypted with key %s, you gave %s: %w", id, given, ErrWrongKey)
}

// Load builds a keyring from key files and environment variables, keys from
// files first, each source in the order given. It returns a nil keyring and
// no error when both lists are empty: encryption is off.
//
// A key file holds one key per line (the first line's key is the primary
// one); blank lines and lines starting with # are ignored. An environment
// variable holds one key, or several separated by commas or spaces. Keys
// are in ParseKey's text form; anything else is an error naming the file and
// line, or the variable.
func Load(files, envs []string) (*Keyring, error) {
	var keys []*Key
	for _, f := range files {
		ks, err := loadFile(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, ks...)
	}
	for _, e := range envs {
		ks, err := loadEnv(e)
		if err != nil {
			return nil, err
		}
		keys = append(keys, ks...)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return NewKeyring(keys...)
}

// LoadKey is Load for at most one file and one variable, as a database's
// configuration names them (`encryption: {key-file: PATH}` or
// `{key-env: VAR}`); empty strings are left out.
func LoadKey(file, env string) (*Keyring, error) {
	var files, envs []string
	if file != "" {
		files = append(files, file)
	}
	if env != "" {
		envs = append(envs, env)
	}
	return Load(files, envs)
}

func loadFile(path string) ([]*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	var keys []*Key
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParseKey(line)
		if err != nil {
			return nil, fmt.Errorf("key file %s line %d: %w", path, i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key file %s holds no key: want one key per line, %s", path, keyFormat)
	}
	return keys, nil
}

func loadEnv(name string) ([]*Key, error) {
	v, ok := os.LookupEnv(name)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("environment variable %s is empty or not set: want a key, %s", name, keyFormat)
	}
	var keys []*Key
	for i, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		k, err := ParseKey(f)
		if err != nil {
			return nil, fmt.Errorf("environment variable %s, key %d: %w", name, i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Join returns a keyring of the keys of rings, in order (so the first
// ring's primary key is the primary one); nil rings are skipped, and nil is
// returned when no ring holds a key. It is how keys from the command line
// are added to keys from a configuration.
func Join(rings ...*Keyring) (*Keyring, error) {
	var keys []*Key
	for _, kr := range rings {
		if kr != nil {
			keys = append(keys, kr.keys...)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return NewKeyring(keys...)
}
