package localstate

import (
	"errors"
	"io/fs"
	"time"
)

// Position is what the daemon had captured when it last committed: the
// replica position (generation, txid), the database it describes, and where
// in the WAL capture resumes.
type Position struct {
	Generation string    `json:"generation"`
	TxID       uint64    `json:"txid"`
	CommitTime time.Time `json:"commit_time"`
	PageSize   uint32    `json:"page_size"`
	DBSize     uint32    `json:"db_size"`
	// Checksum is the database checksum at TxID (see core/segment).
	Checksum uint64 `json:"checksum"`
	// DBFile identifies the database file, so a file replaced while the
	// daemon was down starts a new generation.
	DBFile FileID `json:"db_file"`
	// WAL is where the next frame to capture starts.
	WAL WALPosition `json:"wal"`
}

// FileID identifies a file across renames: device and inode.
type FileID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// WALPosition locates the next frame of the WAL: the header it belongs to
// (salts, checkpoint sequence), its offset, and the running checksum of the
// frame before it.
type WALPosition struct {
	Salt1         uint32 `json:"salt1"`
	Salt2         uint32 `json:"salt2"`
	CheckpointSeq uint32 `json:"checkpoint_seq"`
	Offset        int64  `json:"offset"`
	Checksum1     uint32 `json:"checksum1"`
	Checksum2     uint32 `json:"checksum2"`
}

const positionFile = "position.json"

// LoadPosition returns the last committed position, or ok=false when
// there is none (a new state directory).
func (d *Dir) LoadPosition() (pos Position, ok bool, err error) {
	err = d.readJSON(positionFile, &pos)
	if errors.Is(err, fs.ErrNotExist) {
		return Position{}, false, nil
	}
	return pos, err == nil, err
}

// SavePosition commits pos durably.
func (d *Dir) SavePosition(pos Position) error { return d.writeJSON(positionFile, pos) }

// ReplicaPosition is what one replica has durably stored.
type ReplicaPosition struct {
	Generation string `json:"generation"`
	TxID       uint64 `json:"txid"`
	// Snapshot is the txid of the last snapshot uploaded in Generation.
	Snapshot uint64    `json:"snapshot"`
	Updated  time.Time `json:"updated"`
	// Rebase is set when the staged objects this replica still lacked were
	// dropped because the local state outgrew its limit (max-local-size):
	// the replica cannot continue its chain from TxID and must start again
	// from a snapshot taken after RebaseSince. Kept here so that a
	// restarted daemon still knows; cleared once a snapshot bridged the gap
	// or the replica caught up.
	Rebase      bool      `json:"rebase,omitempty"`
	RebaseSince time.Time `json:"rebase_since,omitzero"`
}

// LoadReplica returns the stored position of replica name, ok=false when
// it has none.
func (d *Dir) LoadReplica(name string) (ReplicaPosition, bool, error) {
	var rp ReplicaPosition
	err := d.readJSON("replicas/"+name+".json", &rp)
	if errors.Is(err, fs.ErrNotExist) {
		return rp, false, nil
	}
	return rp, err == nil, err
}

// SaveReplica records the position replica name has durably stored.
func (d *Dir) SaveReplica(name string, rp ReplicaPosition) error {
	return d.writeJSON("replicas/"+name+".json", rp)
}
