package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The value types below parse environment variables the way n8n's Python
// runner does (docs/protocol.md §10.1), so the same settings mean the same thing.

// envBool is true only for a case-insensitive "true" after trimming;
// anything else is false, never an error.
type envBool bool

func (b *envBool) EnvDecode(v string) error {
	*b = envBool(strings.EqualFold(strings.TrimSpace(v), "true"))
	return nil
}

// envInt is an integer; surrounding whitespace is allowed, as Python's
// int() allows it.
type envInt int

func (i *envInt) EnvDecode(v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("must be an integer, got '%s'", v)
	}
	*i = envInt(n)
	return nil
}

// envList is a comma-separated list: entries trimmed, empty ones dropped,
// duplicates collapsed, case kept.
type envList []string

func (l *envList) EnvDecode(v string) error {
	*l = parseList(v)
	return nil
}

func parseList(v string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" || seen[part] {
			continue
		}
		seen[part] = true
		out = append(out, part)
	}
	sort.Strings(out)
	return out
}

// pythonList renders a sorted list the way Python prints one, for error
// texts copied from n8n's runner ("Got: ['*', 'json']").
func pythonList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = "'" + s + "'"
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}
