package broker

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		frame string
		want  string // "" for success, else a substring of the error
	}{
		{`{"type":"broker:inforequest"}`, ""},
		{`{"type":"broker:taskofferaccept","offerId":"o","taskId":"G-NAqrbJ","extra":{"future":true}}`, ""},
		{`{"type":"broker:taskofferaccept","taskId":"t"}`, `broker:taskofferaccept without "offerId"`},
		{`{"type":"broker:tasksettings","taskId":"t"}`, `without "settings"`},
		{`{"type":"broker:tasksettings","taskId":"t","settings":null}`, `without "settings"`},
		{`{"type":"broker:somethingnew","x":1}`, ""},
		{`{"taskId":"t"}`, `no "type"`},
		{`{"type":5}`, "malformed message"},
		{`[1]`, "malformed message"},
		{`not json`, "malformed message"},
	}
	for _, tc := range cases {
		_, err := Decode([]byte(tc.frame))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.frame, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.frame, err, tc.want)
		}
	}
}

func TestEncodeMatchesN8NsFrames(t *testing.T) {
	cases := map[string]Message{
		`{"type":"runner:info","name":"Python Task Runner","types":["python"]}`:                                  RunnerInfo("Python Task Runner", "python"),
		`{"type":"runner:taskoffer","offerId":"o1","taskType":"python","validFor":5330}`:                         TaskOffer("o1", "python", 5330),
		`{"type":"runner:taskoffer","offerId":"o2","taskType":"python","validFor":-1}`:                           TaskOffer("o2", "python", -1),
		`{"type":"runner:taskaccepted","taskId":"G-NAqrbJ"}`:                                                     TaskAccepted("G-NAqrbJ"),
		`{"type":"runner:taskrejected","taskId":"t","reason":"No open task slots - runner already at capacity"}`: TaskRejected("t", ReasonAtCapacity),
		`{"type":"runner:rpc","taskId":"t","callId":"c","name":"logNodeOutput","params":["'<b>&'"]}`:             RPC("c", "t", "logNodeOutput", json.RawMessage(`["'<b>&'"]`)),
		`{"type":"runner:taskerror","taskId":"t","error":{"message":"boom","description":""}}`:                   TaskError("t", json.RawMessage(`{"message":"boom","description":""}`)),
	}
	for want, m := range cases {
		if got := string(Encode(m)); got != want {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	}
}

func TestAppendTaskDone(t *testing.T) {
	frame := AppendTaskDone(nil, `odd"id`, json.RawMessage(`[{"json":{"s":"<é>"}}]`))
	want := `{"type":"runner:taskdone","taskId":"odd\"id","data":{"result":[{"json":{"s":"<é>"}}]}}`
	if string(frame) != want {
		t.Fatalf("\n got %s\nwant %s", frame, want)
	}
	m, err := Decode(frame)
	if err != nil || m.TaskID != `odd"id` {
		t.Fatalf("round trip: %+v %v", m, err)
	}
}
