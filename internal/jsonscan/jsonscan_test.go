package jsonscan

import (
	"strings"
	"testing"
)

func members(t *testing.T, s string) (string, error) {
	t.Helper()
	var parts []string
	err := EachMember([]byte(s), func(k string, v []byte) error {
		parts = append(parts, k+"="+string(v))
		return nil
	})
	return strings.Join(parts, " | "), err
}

func TestEachMember(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{}`, ``},
		{` { "a" : 1 , "b":"x" } `, `a=1 | b="x"`},
		{`{"s":"br{ace]s \"quoted\" \\","n":null,"t":true}`, `s="br{ace]s \"quoted\" \\" | n=null | t=true`},
		{`{"items":[{"json":{"a":[1,2,{"b":"}]"}]}},[]],"k":-1.5e3}`, `items=[{"json":{"a":[1,2,{"b":"}]"}]}},[]] | k=-1.5e3`},
		{`{"\u0074ype":"runner:info"}`, `type="runner:info"`},
		{`{"u":"日本語 🎉"}`, `u="日本語 🎉"`},
	}
	for _, tc := range cases {
		got, err := members(t, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%s:\n got %q, %v\nwant %q", tc.in, got, err, tc.want)
		}
	}
}

func TestEachMemberRefusesBrokenStructure(t *testing.T) {
	for _, in := range []string{
		``, `[1]`, `"x"`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1} x`, `{"a":"unterminated}`,
		`{"a":[1,2}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":[1}}`, `{"a":{"b":[}]}}`, `{"a":[{]}`,
	} {
		if _, err := members(t, in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func BenchmarkEachMember(b *testing.B) {
	item := `{"json":{"id":1,"name":"customer 1","tags":["a","b"],"address":{"city":"Lisbon"}},"pairedItem":{"item":1}}`
	frame := []byte(`{"type":"broker:tasksettings","taskId":"x","settings":{"code":"return _items","items":[` +
		strings.Repeat(item+",", 999) + item + `]}}`)
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		_ = EachMember(frame, func(string, []byte) error { return nil })
	}
}
