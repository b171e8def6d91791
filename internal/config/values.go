package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The value types below parse environment variables the way n8n's Python
// runner does (docs/protocol.md §10.1), so the same settings mean the same thing.

// Bool is true only for a case-insensitive "true" after trimming;
// anything else is false, never an error.
type Bool bool

func (b *Bool) EnvDecode(v string) error {
	*b = Bool(strings.EqualFold(strings.TrimSpace(v), "true"))
	return nil
}

// Int is an integer; surrounding whitespace is allowed, as Python's int()
// allows it.
type Int int

func (i *Int) EnvDecode(v string) error {
	n, err := decodeInt(v)
	*i = Int(n)
	return err
}

// Seconds is an Int counting seconds, as n8n's timeouts do.
type Seconds int

func (s *Seconds) EnvDecode(v string) error {
	n, err := decodeInt(v)
	*s = Seconds(n)
	return err
}

func (s Seconds) Duration() time.Duration { return time.Duration(s) * time.Second }

// Millis is an Int counting milliseconds, as pyrunner's own pool settings
// do.
type Millis int

func (m *Millis) EnvDecode(v string) error {
	n, err := decodeInt(v)
	*m = Millis(n)
	return err
}

func (m Millis) Duration() time.Duration { return time.Duration(m) * time.Millisecond }

func decodeInt(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("must be an integer, got '%s'", v)
	}
	return n, nil
}

// List is a comma-separated list: entries trimmed, empty ones dropped,
// duplicates collapsed, case kept.
type List []string

func (l *List) EnvDecode(v string) error {
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
