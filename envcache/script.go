package envcache

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// ScriptMetadata is a Code node's PEP 723 inline script metadata: the
// packages it needs and the Python it wants.
type ScriptMetadata struct {
	// Dependencies are the requirements as written, each checked.
	Dependencies []Requirement
	// RequiresPython is the version specifier, "" when absent.
	RequiresPython string
}

// ErrScriptMetadata is wrapped by every problem ParseScriptMetadata
// reports; the message names the line.
var ErrScriptMetadata = errors.New("Invalid inline script metadata")

// blockStart and blockEnd delimit a PEP 723 block: "# /// <type>" and
// "# ///" lines, with every line between them a comment ("#" alone, or
// "# " and text).
var blockStart = regexp.MustCompile(`^# /// ([a-zA-Z0-9-]+)$`)

// ParseScriptMetadata finds the "script" block of PEP 723 inline metadata
// in code, if any, and checks it: one block at most, closed, valid TOML,
// every dependency a valid requirement (PEP 508). It returns nil when code
// has no block. It needs no Python: the runner knows from the code alone
// which environment a task wants.
func ParseScriptMetadata(code string) (*ScriptMetadata, error) {
	lines := strings.Split(strings.ReplaceAll(code, "\r\n", "\n"), "\n")
	var found *ScriptMetadata
	foundAt := 0
	for i := 0; i < len(lines); i++ {
		m := blockStart.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		start := i + 1 // 1-based line of the opening
		var body []string
		end := -1
		for j := i + 1; j < len(lines); j++ {
			line := lines[j]
			if line == "# ///" {
				end = j
				// PEP 723: the block ends at the last "# ///" before a
				// line that is not a comment.
				for k := j + 1; k < len(lines) && isCommentLine(lines[k]); k++ {
					if lines[k] == "# ///" {
						end = k
					}
				}
				break
			}
			if !isCommentLine(line) {
				break
			}
		}
		if end < 0 {
			return nil, fmt.Errorf("%w: line %d: the %q block is not closed by a \"# ///\" line", ErrScriptMetadata, start, m[1])
		}
		for _, line := range lines[i+1 : end] {
			body = append(body, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
		}
		i = end
		if m[1] != "script" {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%w: line %d: a second \"script\" block (the first is on line %d)", ErrScriptMetadata, start, foundAt)
		}
		meta, err := parseScriptBlock(strings.Join(body, "\n"), start)
		if err != nil {
			return nil, err
		}
		found, foundAt = meta, start
	}
	return found, nil
}

func isCommentLine(line string) bool {
	return line == "#" || strings.HasPrefix(line, "# ")
}

// parseScriptBlock reads the TOML of a block that starts on line start.
func parseScriptBlock(body string, start int) (*ScriptMetadata, error) {
	var raw map[string]any
	if _, err := toml.Decode(body, &raw); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%w: line %d: %s", ErrScriptMetadata, start+perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("%w: line %d: %v", ErrScriptMetadata, start, err)
	}
	bodyLines := strings.Split(body, "\n")
	lineOf := func(key string) int {
		for i, l := range bodyLines {
			if k, _, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == key {
				return start + 1 + i
			}
		}
		return start
	}
	meta := &ScriptMetadata{}
	if v, ok := raw["requires-python"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%w: line %d: requires-python must be a string", ErrScriptMetadata, lineOf("requires-python"))
		}
		if err := checkSpecifiers(s); err != nil {
			return nil, fmt.Errorf("%w: line %d: requires-python %q: %v", ErrScriptMetadata, lineOf("requires-python"), s, err)
		}
		meta.RequiresPython = s
	}
	if v, ok := raw["dependencies"]; ok {
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%w: line %d: dependencies must be an array of strings", ErrScriptMetadata, lineOf("dependencies"))
		}
		for _, d := range list {
			s, ok := d.(string)
			if !ok {
				return nil, fmt.Errorf("%w: line %d: dependencies must be an array of strings", ErrScriptMetadata, lineOf("dependencies"))
			}
			req, err := ParseRequirement(s)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: dependency %q is not a valid requirement: %v", ErrScriptMetadata, lineOf("dependencies"), s, err)
			}
			meta.Dependencies = append(meta.Dependencies, req)
		}
	}
	return meta, nil
}
