// Package jsonscan finds the members of a JSON object without decoding them:
// the hot path hands megabytes of items and results through Go without
// reading them. It knows nothing of n8n.
package jsonscan

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// errNotObject: the frame is not a JSON object.
var errNotObject = errors.New("not a JSON object")

// EachMember calls fn with the key and raw value of each member of the JSON
// object b, in order. It finds where each value ends without decoding or
// validating it: a task's settings and results can be megabytes the Go side
// only passes on (Python parses them, and says so when they are broken),
// and encoding/json would scan them twice more. Keys with escapes are
// unescaped. It fails when the object's own structure is broken.
func EachMember(b []byte, fn func(key string, value []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errNotObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return fmt.Errorf("expected a key at offset %d", i)
		}
		end, err := skipString(b, i)
		if err != nil {
			return err
		}
		key, err := keyText(b[i:end])
		if err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return fmt.Errorf("expected ':' at offset %d", i)
		}
		start := skipSpace(b, i+1)
		end, err = skipValue(b, start)
		if err != nil {
			return err
		}
		if err := fn(key, b[start:end]); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return trailing(b, i+1)
		}
		return fmt.Errorf("expected ',' or '}' at offset %d", i)
	}
}

func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return fmt.Errorf("data after the object at offset %d", i)
	}
	return nil
}

func keyText(quoted []byte) (string, error) {
	// The common key, plain UTF-8, is its own text; escapes, control
	// characters (invalid in JSON) and invalid UTF-8 (which a decode turns
	// into U+FFFD) go through encoding/json, so that keys are refused and
	// read as a full decode refuses and reads them.
	if plainKey(quoted) {
		return string(quoted[1 : len(quoted)-1]), nil
	}
	var s string
	err := json.Unmarshal(quoted, &s)
	return s, err
}

func plainKey(quoted []byte) bool {
	for _, c := range quoted {
		if c < 0x20 || c == '\\' {
			return false
		}
	}
	return utf8.Valid(quoted)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset just past the string starting at b[i].
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at offset %d", i)
}

// skipValue returns the offset just past the value starting at b[i]:
// strings and nesting are followed, scalars run to the next delimiter.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("missing value")
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		// The closers still expected, innermost last: a ']' closing a '{'
		// is an error, not the end of the value.
		var open []byte
		for j := i; j < len(b); j++ {
			switch c := b[j]; c {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{':
				open = append(open, '}')
			case '[':
				open = append(open, ']')
			case '}', ']':
				if open[len(open)-1] != c {
					return 0, fmt.Errorf("mismatched %q at offset %d", c, j)
				}
				open = open[:len(open)-1]
				if len(open) == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("unterminated value at offset %d", i)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	if j == i {
		return 0, fmt.Errorf("missing value at offset %d", i)
	}
	return j, nil
}
