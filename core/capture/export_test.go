package capture

// SetBeforeLateStage installs a hook that runs after a checkpoint released
// the write lock and before it stages the tail it read.
func SetBeforeLateStage(c *Capturer, f func() error) { c.beforeLateStage = f }
