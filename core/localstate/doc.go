// Package localstate keeps a database's replication state on local disk,
// beside the database, so that a restarted daemon knows exactly what it had
// captured and can prove (or re-establish) continuity.
//
// Layout of a state directory (default: ".<db file name>-replicator" next
// to the database):
//
//	lock                       flock held by the one daemon replicating the database
//	position.json              the last captured position (see Position), replaced atomically
//	pagehash                   per-page hashes of the database at some txid <= position's (see Hashes)
//	segments/<gen>/<min:016x>-<max:016x>.segment
//	                           captured transactions, durable before they are uploaded
//	replicas/<name>.json       the position each replica has durably stored, and
//	                           whether it awaits a re-base (see ReplicaPosition.Rebase)
//	compaction/<name>/         copies of what was uploaded to replica <name>, which
//	                           compaction merges instead of downloading them
//	                           (kept by core/replicate, see retention.Copies)
//
// Every file is written to a temporary name, fsynced, renamed into place and
// its directory fsynced, so a crash leaves the old version or the new one.
//
// Recovery invariant: position.json names txid T; pagehash holds the page
// hashes at txid H <= T; every segment of the current generation with
// transactions in (H, T] is present in segments/. Replaying those segments
// over pagehash gives the page hashes at T. Segments beyond T were staged by
// a capture that crashed before committing its position and are discarded.
package localstate
