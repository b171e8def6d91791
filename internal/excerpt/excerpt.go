// Package excerpt shortens text for a test's failure message. A runner's
// log, a broker transcript or a task's result can run to megabytes, often
// in a single line (a task that prints 'x' * 65536): printed whole, or as
// its last few kilobytes, it buries what a person needs to read. An
// excerpt keeps the first lines and the last ones, each line cut to its
// start, and says how much it left out.
package excerpt

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// What an excerpt keeps: the start of each line, the first and the last
// lines of the text.
const (
	lineBytes = 300
	headLines = 20
	tailLines = 60
)

// Of returns s shortened for a failure message: every line longer than
// 300 bytes cut to its first 300, and a text of more than 80 lines to its
// first 20 and last 60. Each cut says how much it left out; s itself is
// returned when nothing had to go.
func Of(s string) string {
	lines := strings.Split(s, "\n")
	cut := false
	if len(lines) > headLines+tailLines {
		left := len(lines) - headLines - tailLines
		kept := append(lines[:headLines:headLines], fmt.Sprintf("… [%d lines left out] …", left))
		lines = append(kept, lines[len(lines)-tailLines:]...)
		cut = true
	}
	for i, line := range lines {
		if len(line) > lineBytes {
			lines[i] = Line(line, lineBytes)
			cut = true
		}
	}
	if !cut {
		return s
	}
	return strings.Join(lines, "\n") + fmt.Sprintf("\n[an excerpt of %d bytes in %d lines]", len(s), strings.Count(s, "\n")+1)
}

// Line returns the first n bytes of line (never splitting a character)
// and how many more there were; line itself when it is no longer.
func Line(line string, n int) string {
	if len(line) <= n {
		return line
	}
	for n > 0 && !utf8.RuneStart(line[n]) {
		n--
	}
	return fmt.Sprintf("%s… [%d more bytes]", line[:n], len(line)-n)
}
