package excerpt

import (
	"fmt"
	"strings"
	"testing"
)

func TestShortTextIsUnchanged(t *testing.T) {
	for _, s := range []string{"", "one line", "a\nfew\nlines\n", strings.Repeat("x", lineBytes)} {
		if got := Of(s); got != s {
			t.Errorf("Of(%q) = %q", s, got)
		}
	}
}

// TestAHugePrintShowsItsStart: the log line of a 64 KB print keeps its
// first bytes and says how long it was; the lines around it stay whole.
func TestAHugePrintShowsItsStart(t *testing.T) {
	printed := "[user code] '" + strings.Repeat("x", 64<<10) + "'"
	log := "Registered with broker\n" + printed + "\nCompleted task t1"
	got := Of(log)
	if len(got) > 1000 {
		t.Fatalf("excerpt of %d bytes", len(got))
	}
	want := "Registered with broker\n" + printed[:lineBytes] +
		fmt.Sprintf("… [%d more bytes]\nCompleted task t1\n[an excerpt of %d bytes in 3 lines]", len(printed)-lineBytes, len(log))
	if got != want {
		t.Fatalf("excerpt\n%s\nwant\n%s", got, want)
	}
}

func TestManyLinesKeepTheFirstAndTheLast(t *testing.T) {
	var lines []string
	for i := range 1000 {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	got := strings.Split(Of(strings.Join(lines, "\n")), "\n")
	if len(got) != headLines+1+tailLines+1 {
		t.Fatalf("%d lines: %q", len(got), got)
	}
	if got[0] != "line 0" || got[headLines-1] != "line 19" || got[headLines] != "… [920 lines left out] …" ||
		got[headLines+1] != "line 940" || got[len(got)-2] != "line 999" {
		t.Fatalf("excerpt %q", got)
	}
}

func TestLineNeverSplitsACharacter(t *testing.T) {
	if got := Line("ab日本", 4); got != "ab… [6 more bytes]" {
		t.Fatalf("Line = %q", got)
	}
}
