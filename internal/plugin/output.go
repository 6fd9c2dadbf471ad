package plugin

import "io"

// trimmedLines writes plugin output with no blanks at the end of a line.
// go-nagios ends every line with CheckOutputEOL (" \n", a workaround for one
// web UI), which leaves trailing whitespace in every line Nagios logs and
// mails, and turns the blank separator line into a line holding one space.
// Spaces and tabs are held back until the next byte shows whether they end a
// line (dropped) or sit inside one (written); blanks at the very end of the
// output are dropped too.
type trimmedLines struct {
	w       io.Writer
	pending []byte
	out     []byte
}

// TrimmedLines wraps w so that no line written through it ends in blanks.
func TrimmedLines(w io.Writer) io.Writer { return &trimmedLines{w: w} }

func (t *trimmedLines) Write(p []byte) (int, error) {
	t.out = t.out[:0]
	for _, b := range p {
		switch b {
		case ' ', '\t':
			t.pending = append(t.pending, b)
		case '\n':
			t.pending = t.pending[:0]
			t.out = append(t.out, b)
		default:
			t.out = append(t.out, t.pending...)
			t.pending = t.pending[:0]
			t.out = append(t.out, b)
		}
	}
	if _, err := t.w.Write(t.out); err != nil {
		return 0, err
	}
	return len(p), nil
}
