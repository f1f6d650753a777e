package replica

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sqlitereplicator/replicator/core/segment"
)

// Stream reads object o and hands it to apply as a segment.Reader that
// verifies as it streams, with no local copy: a restore writes a snapshot
// straight into the database it builds instead of storing the object
// first and reading it twice. apply must read the Reader to io.EOF, which
// is when the object as a whole is verified; until then its pages are
// tentative (see segment.Reader), so apply's work must be discardable if
// Stream fails.
//
// On a transient failure the object is read again from its start and
// apply is called again with a new Reader: apply must be repeatable
// (writing pages at fixed offsets is). The header is checked against o's
// name before apply is called. Stream returns the object's header.
func (r *Replica) Stream(ctx context.Context, o Object, apply func(*segment.Reader) error) (segment.Header, error) {
	var hdr segment.Header
	err := r.retry(ctx, "download", func() error {
		rc, err := r.st.Get(ctx, o.Key, 0, -1)
		if err != nil {
			return fmt.Errorf("download %s from %s: %w", o.Key, r.Name, err)
		}
		defer rc.Close()
		sr, err := segment.NewReaderOptions(rc, r.ReaderOptions())
		if err != nil {
			return fmt.Errorf("download %s from %s: %w", o.Key, r.Name, err)
		}
		if err := checkHeader(o, sr.Header()); err != nil {
			return err
		}
		if err := apply(sr); err != nil {
			return fmt.Errorf("download %s from %s: %w", o.Key, r.Name, err)
		}
		// The object is verified only once the Reader reached its end.
		if _, _, err := sr.Next(); !errors.Is(err, io.EOF) {
			if err == nil {
				err = errors.New("the object was not read to its end")
			}
			return fmt.Errorf("download %s from %s: %w", o.Key, r.Name, err)
		}
		hdr = sr.Header()
		return nil
	})
	return hdr, err
}
