package jsonscan

import (
	"bytes"
	"encoding/json"
	"testing"
)

type member struct {
	key   string
	value string // compacted
}

// decodeMembers is what a full decode finds in an object: its members in
// order, duplicates included, each value compacted.
func decodeMembers(b []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, false
		}
		out = append(out, member{tok.(string), buf.String()})
	}
	return out, true
}

// FuzzEachMember holds EachMember against encoding/json. A valid object:
// EachMember finds exactly the members a full decode finds. Anything
// else: EachMember refuses it, unless the only fault is inside a value,
// which EachMember locates but deliberately does not validate (Python
// parses the values, and says when they are broken).
func FuzzEachMember(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1}`, ` { "a" : 1 , "b":"x" } `, `{"s":"br{ace]s \"q\" \\","n":null,"t":true}`,
		`{"items":[{"json":{"a":[1,2,{"b":"}]"}]}},[]],"k":-1.5e3}`, `{"\u0074ype":"runner:info"}`,
		`{"u":"日本語 🎉"}`, `{"a":1,"a":2}`, `{"a":[1}}`, `{"a":1,}`, `{"a":1} x`, `[1]`, `"x"`, ``, `{"a":tru}`,
		`{"op":"result","result":[{"json":{"x":null}}],"print_args":[["'hi'"]],"analysis":"passed"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []member
		err := EachMember(b, func(k string, v []byte) error {
			var buf bytes.Buffer
			if json.Compact(&buf, v) != nil {
				buf.Reset()
				buf.Write(v) // not valid on its own: kept as found
			}
			got = append(got, member{k, buf.String()})
			return nil
		})
		want, isObject := decodeMembers(b)
		valid := isObject && json.Valid(b)
		switch {
		case valid && err != nil:
			t.Fatalf("valid object %q refused: %v", b, err)
		case valid:
			if len(got) != len(want) {
				t.Fatalf("%q: found %d members, a decode finds %d", b, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%q: member %d is %+v, a decode finds %+v", b, i, got[i], want[i])
				}
			}
		case err == nil:
			for _, m := range got {
				if !json.Valid([]byte(m.value)) {
					return // a broken value, which EachMember does not look into
				}
			}
			t.Fatalf("%q is not a valid JSON object, but EachMember accepted it with valid values: %+v", b, got)
		}
	})
}
