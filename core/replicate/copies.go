package replicate

import (
	"context"
	"path/filepath"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/retention"
)

// DefaultMaintenanceInterval is how long after an upload a maintenance
// pass runs when Config.MaintenanceInterval is zero; under continuous
// writes, how often passes run. A pass costs a handful of requests (two
// listings, a Put and a header read per merged run of up to 256 segments,
// one Delete), so ten minutes keeps maintenance to about sixty requests an
// hour at one upload a second (the request budget beside the uploads is
// about a hundred), while a restore of the newest ten minutes downloads
// at most one level-0 segment per sync interval of them.
const DefaultMaintenanceInterval = 10 * time.Minute

// copiesDir is the directory of the state directory that holds, per
// replica, the segments uploaded to it until compaction merged them
// (retention.Copies).
const copiesDir = "compaction"

// compactionCopies gives u a store of local copies of what it uploads and
// returns it, for compaction to merge instead of downloading; nil (and
// nothing kept) when compaction is off or the directory cannot be made.
// Called before the uploaders start.
func (d *DB) compactionCopies(u *uploader) *retention.Copies {
	if d.cfg.CompactionInterval <= 0 {
		return nil
	}
	limit := retention.DefaultCopiesMaxBytes
	if d.cfg.MaxLocalSize > 0 {
		limit = max(min(limit, d.cfg.MaxLocalSize/4), 1) // 1: keep headers only
	}
	c, err := retention.OpenCopies(filepath.Join(d.stateDir, copiesDir, u.r.Name), limit)
	if err != nil {
		d.log.Warn("compaction will download every input", "replica", u.r.Name, "err", err)
		return nil
	}
	u.copies = c
	return c
}

// uploadFile uploads the file at path as o, handing it to compaction
// (when u keeps copies) from before the upload on, so that a maintenance
// pass that lists o finds its copy (see retention.Copies.KeepUploading).
func (u *uploader) uploadFile(ctx context.Context, o replica.Object, path string) error {
	if err := u.copies.KeepUploading(o, path); err != nil {
		u.log.Debug("no local copy for compaction; it will download the object", "err", err)
	}
	err := u.r.Upload(ctx, o, path)
	u.copies.Uploaded(o, err == nil)
	return u.count(o, path, err)
}
