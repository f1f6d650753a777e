package storagev1

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates the code into a temporary directory
// and compares it with the committed files, so an edit to storage.proto that
// was not followed by `go generate` fails CI.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("protoc is not installed; CI must install protobuf-compiler to check the generated code")
		}
		t.Skip("protoc not installed")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "gen.sh", out)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gen.sh: %v", err)
	}
	for _, name := range []string{"storage.pb.go", "storage_grpc.pb.go"} {
		want, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `go generate ./sdk/...` and commit the result", name)
		}
	}
}
