package retention_test

import (
	"bytes"
	"io"

	"github.com/sqlitereplicator/replicator/sdk"
)

func readFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }
func bytesReader(b []byte) io.Reader              { return bytes.NewReader(b) }
func putOpts() sdk.PutOptions                     { return sdk.PutOptions{} }
