package python

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// docTable reads the table of messages from doc.go, as the tests hold the
// code to it.
func docTable(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, comment := strings.CutPrefix(sc.Text(), "//")
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 4 && fields[0] == "channel" && fields[1] == "sender":
			in = true
		case in && (!comment || len(fields) == 0):
			in = false
		case in && len(fields) < 4:
			t.Fatalf("doc.go: a row of the table of messages without fields: %q", line)
		case in:
			rest := strings.Join(fields[3:], " ")
			rows = append(rows, strings.Join(fields[:3], " ")+" "+rest)
		}
	}
	slices.Sort(rows)
	if len(rows) == 0 {
		t.Fatal("no table of messages in doc.go")
	}
	return rows
}

func TestDescriptionMatchesTheCode(t *testing.T) {
	doc, code := docTable(t), describe()
	if !slices.Equal(doc, code) {
		t.Fatalf("doc.go's table and messageFields differ:\ndoc.go:\n  %s\nmessages.go:\n  %s",
			strings.Join(doc, "\n  "), strings.Join(code, "\n  "))
	}
}

// keys are the member names of a JSON object.
func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return keysOf(m)
}

// described is the fields the table lists for m, "op" included.
func described(m message) []string {
	fields := append([]string{"op"}, messageFields[m]...)
	if slices.Contains(fields, everyConfigField) {
		fields = configFields()
	}
	slices.Sort(fields)
	return fields
}

// configFields are Config's JSON names.
func configFields() []string {
	var names []string
	ty := reflect.TypeOf(Config{})
	for i := range ty.NumField() {
		name, _, _ := strings.Cut(ty.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// TestGoSendsWhatIsDescribed: every message Go builds carries exactly the
// fields the table lists for it.
func TestGoSendsWhatIsDescribed(t *testing.T) {
	sent := map[message][]byte{
		{TaskChannel, FromGo, "task"}:      TaskFrame("t1", json.RawMessage(`{"code":"x"}`), TaskFlags{Analyzed: true, Compiled: []byte{0xe3, 1}, WantCompiled: true}),
		{TaskChannel, FromGo, "config"}:    ConfigFrame(Config{}),
		{ControlChannel, FromGo, "config"}: ConfigFrame(Config{}),
		{ControlChannel, FromGo, "spawn"}:  SpawnMsg(1, 100),
		{ControlChannel, FromGo, "kill"}:   KillMsg(7, 42, 9),
	}
	for m := range messageFields {
		if m.sender != FromGo {
			continue
		}
		frame, ok := sent[m]
		if !ok {
			t.Errorf("%v: the table lists a message Go does not build", m)
			continue
		}
		got := keys(t, frame)
		slices.Sort(got)
		if want := described(m); !slices.Equal(got, want) {
			t.Errorf("%v sends %v, the table lists %v", m, got, want)
		}
	}
}

// TestConfigMatchesPython: the "config" message is read by config.py's
// Config; each side must know every field the other has.
func TestConfigMatchesPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	cmd := exec.Command(python, "-I", "-c", "import json, sys; sys.path.insert(0, 'runtime'); "+
		"from pyrunner_runtime.config import Config; print(json.dumps(sorted(Config.__dataclass_fields__)))")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("listing config.py's fields: %v", err)
	}
	var py []string
	if err := json.Unmarshal(out, &py); err != nil {
		t.Fatal(err)
	}
	py = slices.DeleteFunc(py, func(f string) bool { return f == "extra" }) // what it does not know
	goFields := slices.DeleteFunc(configFields(), func(f string) bool { return f == "op" })
	if !slices.Equal(py, goFields) {
		t.Fatalf("Config fields differ:\nGo:     %v\nPython: %v", goFields, py)
	}
}

// pythonMessages is one example of every message Python sends, with every
// field its row lists.
var pythonMessages = map[message]string{
	{TaskChannel, FromChild, "ready"}:           `{"op":"ready"}`,
	{TaskChannel, FromChild, "compiled"}:        `{"op":"compiled","code":"4wE="}`,
	{TaskChannel, FromChild, "result"}:          `{"op":"result","result":[],"print_args":[["'a'"]],"analysis":"passed","ownCompiled":true}`,
	{TaskChannel, FromChild, "error"}:           `{"op":"error","kind":"user","error":{"message":"boom","description":"","stack":"s"},"print_args":[],"analysis":"passed","ownCompiled":true}`,
	{ControlChannel, FromZygote, "ready"}:       `{"op":"ready","pid":1,"version":"3.11.2","landlock":6}`,
	{ControlChannel, FromZygote, "failed"}:      `{"op":"failed","error":"x"}`,
	{ControlChannel, FromZygote, "spawned"}:     `{"op":"spawned","id":1,"pid":2}`,
	{ControlChannel, FromZygote, "spawnfailed"}: `{"op":"spawnfailed","id":1,"error":"x"}`,
	{ControlChannel, FromZygote, "exited"}:      `{"op":"exited","pid":2,"code":0,"signal":9}`,
}

// decode is the decoder the Go side reads m with.
func decode(m message, frame []byte) error {
	switch {
	case m.channel == ControlChannel:
		_, err := DecodeControl(frame)
		return err
	case m.op == "ready":
		return CheckReady(frame)
	case m.op == "compiled":
		_, _, err := DecodeCompiled(frame)
		return err
	}
	_, err := DecodeReply(frame, 100)
	return err
}

// TestPythonMessagesAreCheckedAgainstTheDescription: what the table lists
// is read; a field it does not list makes the message invalid, so that a
// field Python starts sending without describing it fails the tests that
// run real processes.
func TestPythonMessagesAreCheckedAgainstTheDescription(t *testing.T) {
	for m := range messageFields {
		if m.sender == FromGo || m.op == "(error)" {
			continue
		}
		example, ok := pythonMessages[m]
		if !ok {
			t.Errorf("%v: no example", m)
			continue
		}
		if got := keys(t, []byte(example)); len(got) != len(described(m)) {
			t.Errorf("%v: the example does not carry every listed field", m)
		}
		if err := decode(m, []byte(example)); err != nil {
			t.Errorf("%v: %s refused: %v", m, example, err)
		}
		extra := strings.Replace(example, `{"op"`, `{"undescribed":1,"op"`, 1)
		if err := decode(m, []byte(extra)); err == nil || !strings.Contains(err.Error(), `"undescribed"`) {
			t.Errorf("%v: a field the protocol does not describe was accepted (%v)", m, err)
		}
	}
	withStderr := strings.Replace(pythonMessages[message{TaskChannel, FromChild, "error"}], `"stack":"s"`, `"stack":"s","stderr":"x"`, 1)
	if _, err := DecodeReply([]byte(withStderr), 100); err == nil || !strings.Contains(err.Error(), `"stderr"`) {
		t.Errorf("an error object with an undescribed field was accepted (%v)", err)
	}
}

// TestDecodeReplyRefusesWhatNoHonestProcessSends: the reply comes from a
// process that ran user code; what it could forge must not reach n8n.
func TestDecodeReplyRefusesWhatNoHonestProcessSends(t *testing.T) {
	many := `{"op":"result","result":[],"print_args":[` + strings.Repeat(`["x"],`, 101) + `["x"]]}`
	cases := map[string]struct{ frame, err string }{
		"invalid UTF-8":      {"{\"op\":\"result\",\"result\":[\"\xff\"],\"print_args\":[]}", "reply is not valid UTF-8"},
		"too many prints":    {many, "reply has 102 print entries, more than 101"},
		"print not an array": {`{"op":"result","result":[],"print_args":["x"]}`, "reply has a print entry that is not an array"},
		"result not JSON":    {`{"op":"result","result":[1,],"print_args":[]}`, "result reply whose result is not valid JSON"},
		"no error object":    {`{"op":"error","kind":"user","print_args":[]}`, "error reply without an error"},
		"unknown op":         {`{"op":"exec","print_args":[]}`, `reply with unknown op "exec"`},
		"result without one": {`{"op":"result","print_args":[]}`, "result reply without a result"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeReply([]byte(c.frame), 100)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want one with %q", err, c.err)
			}
		})
	}
	r, err := DecodeReply([]byte(`{"op":"result","result":[{"json":{"s":"é"}}],"print_args":[["a"]],"analysis":"passed"}`), 100)
	if err != nil || string(r.Result) != `[{"json":{"s":"é"}}]` || len(r.Prints) != 1 || !r.AnalysisPassed {
		t.Fatalf("honest reply: %+v, %v", r, err)
	}
	r, err = DecodeReply([]byte(`{"op":"error","kind":"static","error":{"message":"m"},"print_args":[]}`), 100)
	if err != nil || r.Error == nil || r.Error.Description != nil || r.Kind != "static" {
		t.Fatalf("an error without a description: %+v, %v", r, err)
	}
}

func TestReadFrameRefusesWhatItWillNotHold(t *testing.T) {
	var frame bytes.Buffer
	frame.Write([]byte{0x40, 0, 0, 0})
	if _, err := ReadFrame(&frame, 1<<20); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("ReadFrame of a 1 GiB announcement: %v", err)
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, []byte(`{"op":"ready"}`)); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFrame(&buf, 64)
	if err != nil || string(got) != `{"op":"ready"}` {
		t.Fatalf("round trip: %q %v", got, err)
	}
}

// TestTextsAreShared: the settings texts come from texts.json on both
// sides, with n8n's words.
func TestTextsAreShared(t *testing.T) {
	for name, want := range map[string]string{
		Text("settings_not_object"):                                 "Invalid task settings message: settings must be an object",
		Text("missing_field", "field", "code"):                      "Missing field in task settings message: code",
		Text("invalid_field", "field", "items", "kind", "an array"): "Invalid field in task settings message: items must be an array",
		Text("unknown_node_mode", "mode", "sideways"):               "Unknown nodeMode: sideways",
	} {
		if name != want {
			t.Errorf("got %q, want %q", name, want)
		}
	}
}
