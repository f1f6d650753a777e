package replicate

// UploadersRunning is how many of d's replicas have their upload loop's
// goroutine running.
func UploadersRunning(d *DB) int {
	n := 0
	for _, u := range d.ups {
		u.runMu.Lock()
		if u.running {
			n++
		}
		u.runMu.Unlock()
	}
	return n
}
