package faults

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name          string
		line          string
		minflt, cminf uint64
		wantErr       bool
	}{
		{name: "plain", line: "28602 (cat) R 28523 28523 15671 0 -1 4194304 98 7 0 0 0 0 0 0 20 0 1 0",
			minflt: 98, cminf: 7},
		{name: "name with spaces and parentheses", line: "5 (a (b) c) S 1 5 5 0 -1 0 1234 56789 3 0",
			minflt: 1234, cminf: 56789},
		{name: "truncated", line: "5 (x) S 1 5 5 0", wantErr: true},
		{name: "no command name", line: "5 x S 1 5 5 0 -1 0 1 2", wantErr: true},
		{name: "not a number", line: "5 (x) S 1 5 5 0 -1 0 many 2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			minflt, cminflt, err := ParseStat([]byte(tt.line))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || minflt != tt.minflt || cminflt != tt.cminf {
				t.Fatalf("got %d, %d, %v; want %d, %d", minflt, cminflt, err, tt.minflt, tt.cminf)
			}
		})
	}
}

// A child that touches 4 MB of fresh memory (1,024 pages) adds at least
// that many faults to the tree, live and once reaped.
func TestTreeMinorCountsChildrenLiveAndReaped(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	before, err := TreeMinor(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", "import sys\nb = bytearray(4 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint(1, flush=True)\nsys.stdin.read()")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 2)
	if _, err := stdout.Read(buf); err != nil {
		t.Fatal(err)
	}
	live, err := TreeMinor(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	reaped, err := TreeMinor(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if live-before < 1024 {
		t.Errorf("live child: %d faults, want at least 1024", live-before)
	}
	if reaped < live {
		t.Errorf("after reaping: %d, below the %d counted live", reaped, live)
	}
}
