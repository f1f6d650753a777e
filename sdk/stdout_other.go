//go:build !unix

package sdk

import "os"

// guardStdout is a no-op where descriptors cannot be duplicated portably.
func guardStdout() *os.File { return os.Stdout }
