package conformance

// Steps that several scenarios take in the same way. Each fails the
// scenario at the line that called it, as the step's own calls would.

// replicateRows runs the daemon once over n new rows: it starts the daemon
// on the scenario's config, has a commit n rows, waits until the daemon
// reports them in the replica, stops it (a final upload, then exit 0) and
// returns the position it reported. Scenarios that restart the daemon, or
// change the database while it is down, take this step before and after.
func (s *scen) replicateRows(a *app, n int) position {
	s.t.Helper()
	d := s.startDaemon("")
	a.insert(n)
	p := d.waitSynced(syncTimeout)
	d.stop()
	return p
}

// wantRestoresSource restores the replica's latest state and checks that
// it equals the source database as it is now (what names the check in the
// failure); it returns the restore for further checks. It is how almost
// every scenario ends: whatever happened, the replica must give back the
// database.
func (s *scen) wantRestoresSource(what string) restored {
	s.t.Helper()
	r := s.restore()
	s.wantSame(r, s.contentOf(s.db), what)
	return r
}
