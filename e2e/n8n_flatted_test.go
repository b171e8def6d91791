package e2e

// The flatted format n8n stores execution data in, decoded for the N8N tests.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// parseFlatted decodes what the flatted library writes, as n8n stores
// execution data: a JSON array whose first element is the root value.
// Inside the array's objects and arrays every string is the decimal index
// of another element; that is how strings, objects, arrays and repeated or
// circular references are stored. A string element is a plain string, and
// numbers, booleans and null stay inline.
func parseFlatted(text string) (any, error) {
	var input []any
	if err := json.Unmarshal([]byte(text), &input); err != nil {
		return nil, fmt.Errorf("flatted: %w", err)
	}
	if len(input) == 0 {
		return nil, errors.New("flatted: empty array")
	}
	// Objects and arrays are recorded before their members are resolved,
	// so that a circular reference finds them.
	done := make(map[int]any)
	var element func(i int) (any, error)
	member := func(v any) (any, error) {
		s, ok := v.(string)
		if !ok {
			return v, nil
		}
		i, err := strconv.Atoi(s)
		if err != nil || i < 0 || i >= len(input) {
			return nil, fmt.Errorf("flatted: %q is not an index into %d elements", s, len(input))
		}
		return element(i)
	}
	element = func(i int) (any, error) {
		if v, ok := done[i]; ok {
			return v, nil
		}
		switch e := input[i].(type) {
		case map[string]any:
			out := make(map[string]any, len(e))
			done[i] = out
			for k, v := range e {
				r, err := member(v)
				if err != nil {
					return nil, err
				}
				out[k] = r
			}
			return out, nil
		case []any:
			out := make([]any, len(e))
			done[i] = out
			for j, v := range e {
				r, err := member(v)
				if err != nil {
					return nil, err
				}
				out[j] = r
			}
			return out, nil
		default:
			return e, nil
		}
	}
	return element(0)
}
