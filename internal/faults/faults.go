// Package faults counts the minor page faults of the processes a process
// started (TreeMinor, read it first): the figure the benchmarks print per
// task because, unlike time, it does not depend on the machine's load or
// on how much a fault costs on its hypervisor.
//
// The count is the kernel's own (/proc/<pid>/stat): every live descendant's
// minflt and cminflt (its reaped children's), and the root's cminflt. A
// process counts in one place only: live, in its own minflt; once reaped,
// in its parent's cminflt. The root's own minflt is left out.
package faults

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// ErrMalformed is returned for a stat line that does not have the fields
// of Linux's /proc/<pid>/stat.
var ErrMalformed = errors.New("malformed /proc stat line")

// TreeMinor returns the minor faults of root's descendants, live and
// reaped (see the package comment). The difference of two calls around a
// run is what that run cost; a process that exits between the reads of
// its parent and of itself may be missed once.
func TreeMinor(root int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", root))
	if err != nil {
		return 0, err
	}
	_, total, err := ParseStat(b)
	if err != nil {
		return 0, err
	}
	for _, pid := range Descendants(root) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone since: counted in its parent's cminflt from now on
		}
		minflt, cminflt, err := ParseStat(b)
		if err != nil {
			return 0, err
		}
		total += minflt + cminflt
	}
	return total, nil
}

// Descendants lists root's children, theirs, and so on, from the
// children files of every thread (a Go process forks from any of them).
func Descendants(root int) []int {
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, field := range bytes.Fields(b) {
				if child, err := strconv.Atoi(string(field)); err == nil {
					out = append(out, child)
					queue = append(queue, child)
				}
			}
		}
	}
	return out
}

// ParseStat returns the minflt and cminflt fields of a /proc/<pid>/stat
// line (fields 10 and 11, proc(5)). The command name in parentheses may
// hold spaces and parentheses itself: fields are counted after the last ')'.
func ParseStat(b []byte) (minflt, cminflt uint64, err error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, 0, ErrMalformed
	}
	// fields[0] is field 3 (state); minflt is field 10, cminflt 11.
	fields := bytes.Fields(b[end+1:])
	if len(fields) < 9 {
		return 0, 0, ErrMalformed
	}
	if minflt, err = strconv.ParseUint(string(fields[7]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%w: minflt: %v", ErrMalformed, err)
	}
	if cminflt, err = strconv.ParseUint(string(fields[8]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%w: cminflt: %v", ErrMalformed, err)
	}
	return minflt, cminflt, nil
}
