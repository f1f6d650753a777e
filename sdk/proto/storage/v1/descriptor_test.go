package storagev1

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The wire protocol v1 is a promise to plugins built against any earlier
// SDK of the same major version: TestDescriptorSnapshot compares the
// compiled descriptor of storage.proto with a snapshot, and fails
//
//   - when an existing element changed or went away (a field renumbered,
//     renamed, retyped or removed; a message, enum value or RPC removed or
//     changed): that is an incompatible change, which needs a new protocol
//     version (storage/v2, served side by side with v1), never an edit of
//     v1; -update refuses to record it;
//   - when elements were added: an additive change is allowed, and
//     `go test ./sdk/proto/storage/v1 -run TestDescriptorSnapshot -update`
//     records it, so that each addition is reviewed in the snapshot's diff.
//
// The snapshot is a canonical text form written here, not prototext,
// whose output protobuf-go deliberately varies between builds.

var update = flag.Bool("update", false, "rewrite testdata/storage_v1.descriptor.txt with the current descriptor (additive changes only)")

const snapshotPath = "testdata/storage_v1.descriptor.txt"

const snapshotHeader = `# Storage protocol v1: the wire-visible shape of storage.proto, one element
# per line as "KIND NAME [= DEFINITION]". Checked by TestDescriptorSnapshot:
# lines may be added (go test -run TestDescriptorSnapshot -update), never
# changed or removed; an incompatible change needs protocol v2.
`

// describe returns the canonical form of fd: one "key = value" line per
// element, in declaration order.
func describe(fd protoreflect.FileDescriptor) []string {
	var lines []string
	add := func(key, value string) {
		if value != "" {
			key += " = " + value
		}
		lines = append(lines, key)
	}
	add("syntax", fd.Syntax().String())
	add("package", string(fd.Package()))
	add("go_package", goPackage(fd))
	var messages func(ms protoreflect.MessageDescriptors)
	messages = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			add("message "+string(m.FullName()), "")
			for j := range m.Fields().Len() {
				f := m.Fields().Get(j)
				def := string(f.Name()) + " " + fieldType(f)
				if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
					def += " oneof " + string(o.Name())
				}
				add(fmt.Sprintf("field %s#%d", m.FullName(), f.Number()), def)
			}
			for j := range m.ReservedRanges().Len() {
				r := m.ReservedRanges().Get(j)
				add(fmt.Sprintf("reserved %s#%d-%d", m.FullName(), r[0], r[1]-1), "")
			}
			enums(m.Enums(), add)
			messages(m.Messages())
		}
	}
	enums(fd.Enums(), add)
	messages(fd.Messages())
	for i := range fd.Services().Len() {
		s := fd.Services().Get(i)
		add("service "+string(s.FullName()), "")
		for j := range s.Methods().Len() {
			m := s.Methods().Get(j)
			in, out := string(m.Input().FullName()), string(m.Output().FullName())
			if m.IsStreamingClient() {
				in = "stream " + in
			}
			if m.IsStreamingServer() {
				out = "stream " + out
			}
			add(fmt.Sprintf("rpc %s/%s", s.FullName(), m.Name()), in+" -> "+out)
		}
	}
	return lines
}

func enums(es protoreflect.EnumDescriptors, add func(key, value string)) {
	for i := range es.Len() {
		e := es.Get(i)
		add("enum "+string(e.FullName()), "")
		for j := range e.Values().Len() {
			v := e.Values().Get(j)
			add(fmt.Sprintf("value %s#%d", e.FullName(), v.Number()), string(v.Name()))
		}
	}
}

func goPackage(fd protoreflect.FileDescriptor) string {
	if o, ok := fd.Options().(*descriptorpb.FileOptions); ok {
		return o.GetGoPackage()
	}
	return ""
}

// fieldType is a field's wire-relevant type: cardinality, kind and, for
// messages and enums, the full name.
func fieldType(f protoreflect.FieldDescriptor) string {
	if f.IsMap() {
		return fmt.Sprintf("map<%s, %s>", fieldType(f.MapKey()), fieldType(f.MapValue()))
	}
	t := f.Kind().String()
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		t = string(f.Message().FullName())
	case protoreflect.EnumKind:
		t = string(f.Enum().FullName())
	}
	switch {
	case f.IsList():
		t = "repeated " + t
	case f.HasOptionalKeyword():
		t = "optional " + t
	}
	return t
}

// parseSnapshot returns the keys in order and the definition of each.
func parseSnapshot(text string) ([]string, map[string]string, error) {
	var keys []string
	defs := map[string]string{}
	for n, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " = ")
		if _, dup := defs[k]; dup || k == "" {
			return nil, nil, fmt.Errorf("line %d: %q: empty or repeated key", n+1, line)
		}
		keys = append(keys, k)
		defs[k] = v
	}
	return keys, defs, nil
}

// compatibility compares the snapshot with the current descriptor: the
// incompatible changes, and the additions.
func compatibility(old, cur []string) (broken, added []string) {
	oldKeys, oldDefs, _ := parseSnapshot(strings.Join(old, "\n"))
	curKeys, curDefs, _ := parseSnapshot(strings.Join(cur, "\n"))
	for _, k := range oldKeys {
		switch v, ok := curDefs[k]; {
		case !ok:
			broken = append(broken, fmt.Sprintf("removed: %s = %s", k, oldDefs[k]))
		case v != oldDefs[k]:
			broken = append(broken, fmt.Sprintf("changed: %s = %s, was %s", k, v, oldDefs[k]))
		}
	}
	for _, k := range curKeys {
		if _, ok := oldDefs[k]; !ok {
			added = append(added, fmt.Sprintf("%s = %s", k, curDefs[k]))
		}
	}
	return broken, added
}

func TestDescriptorSnapshot(t *testing.T) {
	cur := describe(File_storage_proto)
	data, err := os.ReadFile(snapshotPath)
	if os.IsNotExist(err) && *update {
		data, err = nil, nil
	}
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if _, _, err := parseSnapshot(string(data)); err != nil {
		t.Fatalf("%s: %v", snapshotPath, err)
	}
	old := strings.Split(string(data), "\n")
	broken, added := compatibility(old, cur)
	for _, b := range broken {
		t.Errorf("incompatible change to protocol v1: %s", b)
	}
	if len(broken) > 0 {
		t.Fatalf("storage.proto v1 changed incompatibly; keep v1 as it was and add the change to a new protocol version (see docs/plugins.md, Versioning)")
	}
	want := snapshotHeader + strings.Join(cur, "\n") + "\n"
	if string(data) == want {
		return
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(snapshotPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(snapshotPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated %s: %d additions", snapshotPath, len(added))
		return
	}
	for _, a := range added {
		t.Errorf("added (compatible): %s", a)
	}
	t.Errorf("%s is stale: review the additions, then run go test -run TestDescriptorSnapshot -update", snapshotPath)
}

// TestCompatibilityRules checks that the comparison flags each kind of
// incompatible change and accepts additions.
func TestCompatibilityRules(t *testing.T) {
	base := describe(File_storage_proto)
	edit := func(from, to string) []string {
		var out []string
		found := false
		for _, l := range base {
			if l == from {
				found = true
				if to == "" {
					continue
				}
				l = to
			}
			out = append(out, l)
		}
		if !found {
			t.Fatalf("no line %q in the descriptor", from)
		}
		return out
	}
	const key = "field replicator.storage.v1.PutHeader#2 = key string"
	for name, cur := range map[string][]string{
		"renumbered": edit(key, "field replicator.storage.v1.PutHeader#5 = key string"),
		"renamed":    edit(key, "field replicator.storage.v1.PutHeader#2 = name string"),
		"retyped":    edit(key, "field replicator.storage.v1.PutHeader#2 = key bytes"),
		"repeated":   edit(key, "field replicator.storage.v1.PutHeader#2 = key repeated string"),
		"removed":    edit(key, ""),
		"rpc stream": edit("rpc replicator.storage.v1.Storage/Stat = replicator.storage.v1.StatRequest -> replicator.storage.v1.StatResponse", "rpc replicator.storage.v1.Storage/Stat = replicator.storage.v1.StatRequest -> stream replicator.storage.v1.StatResponse"),
		"package":    edit("package = replicator.storage.v1", "package = replicator.storage.v2"),
	} {
		if broken, _ := compatibility(base, cur); len(broken) == 0 {
			t.Errorf("%s: not flagged as incompatible", name)
		}
	}
	added := append(append([]string{}, base...), "field replicator.storage.v1.PutHeader#9 = content_type string")
	if broken, add := compatibility(base, added); len(broken) != 0 || len(add) != 1 {
		t.Errorf("a new field: got incompatible %q, added %q; want one compatible addition", broken, add)
	}
}
