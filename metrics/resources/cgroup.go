package resources

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// CgroupMemory is a cgroup's memory limit and use. Page cache that is
// inactive (inactive_file) is given back under pressure, so it does not
// count as used.
type CgroupMemory struct {
	Limit, Usage, InactiveFile uint64
}

// Available is what may be allocated before the limit.
func (c CgroupMemory) Available() uint64 {
	used := c.Usage - min(c.InactiveFile, c.Usage)
	if used >= c.Limit {
		return 0
	}
	return c.Limit - used
}

// unlimitedV1 is where cgroup v1 puts "no limit": a page-rounded
// 2^63 - 1 (9223372036854771712); anything from 2^62 up is taken as none.
const unlimitedV1 = 1 << 62

// parseCgroupV2 reads cgroup v2's memory.max, memory.current and
// memory.stat; nil when there is no limit ("max").
func parseCgroupV2(maxText, current, stat string) (*CgroupMemory, error) {
	maxText = strings.TrimSpace(maxText)
	if maxText == "max" {
		return nil, nil
	}
	return parseCgroup(maxText, current, stat, "inactive_file")
}

// parseCgroupV1 reads cgroup v1's memory.limit_in_bytes,
// memory.usage_in_bytes and memory.stat; nil when there is no limit.
func parseCgroupV1(limit, usage, stat string) (*CgroupMemory, error) {
	c, err := parseCgroup(limit, usage, stat, "total_inactive_file")
	if err != nil || c.Limit >= unlimitedV1 {
		return nil, err
	}
	return c, nil
}

func parseCgroup(limit, usage, stat, inactiveKey string) (*CgroupMemory, error) {
	var c CgroupMemory
	var err error
	if c.Limit, err = strconv.ParseUint(strings.TrimSpace(limit), 10, 64); err != nil {
		return nil, fmt.Errorf("memory limit: %w", err)
	}
	if c.Usage, err = strconv.ParseUint(strings.TrimSpace(usage), 10, 64); err != nil {
		return nil, fmt.Errorf("memory usage: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(stat))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), " ")
		if ok && key == inactiveKey {
			c.InactiveFile, _ = strconv.ParseUint(strings.TrimSpace(value), 10, 64)
		}
	}
	return &c, nil
}
