package history

// Journal receives what a run records, as it is recorded, so that it is on
// disk should the harness die before the run's record is written
// (report.Journal). Its methods are called from every client and watch
// stream at once.
type Journal interface {
	// Operation is a client's operation, just returned.
	Operation(op Operation)
	// WatchOpened is a watch stream just opened, with no response yet.
	WatchOpened(w Watch)
	// WatchResponse is a response watch stream watch received.
	WatchResponse(watch int, r WatchResponse)
}

// SetJournal makes every recorder and watch stream on the clock pass what
// it records to j as well. Call it before anything is recorded.
func (c *Clock) SetJournal(j Journal) { c.journal = j }

// Journal is the clock's journal; nil if none.
func (c *Clock) Journal() Journal { return c.journal }
