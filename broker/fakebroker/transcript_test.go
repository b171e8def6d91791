package fakebroker

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTranscriptRecordsTheConversation(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1")
	_, taskID := startTask(t, b, r, "o1", `{"code":"x"}`)

	var got []string
	for _, f := range b.Transcript() {
		if f.RunnerID != "r1" {
			continue
		}
		var m struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(f.Msg, &m)
		got = append(got, strings.TrimSpace(f.Dir+" "+m.Type))
	}
	want := []string{
		"ws-connect",
		"ws-open",
		"broker->runner broker:inforequest",
		"runner->broker runner:info",
		"broker->runner broker:runnerregistered",
		"runner->broker runner:taskoffer",
		"broker->runner broker:taskofferaccept",
		"runner->broker runner:taskaccepted",
		"broker->runner broker:tasksettings",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("transcript\n got %q\nwant %q", got, want)
	}
	if !hasFrame(b, "r1", DirBrokerToRunner, `"taskId":"`+taskID+`"`, `"settings":{"code":"x"}`) {
		t.Error("tasksettings frame not recorded byte for byte")
	}
}

func TestTranscriptLineFormat(t *testing.T) {
	f := Frame{
		T:        time.Date(2026, 11, 27, 11, 45, 19, 187_654_321, time.UTC),
		RunnerID: "7427abf3d4a536ae",
		Dir:      DirRunnerToBroker,
		Msg:      json.RawMessage(`{"type":"runner:info","name":"probe","types":["python"]}`),
	}
	var enc bytes.Buffer
	e := json.NewEncoder(&enc)
	e.SetEscapeHTML(false)
	noErr(t, e.Encode(f))
	line := strings.TrimSuffix(enc.String(), "\n")
	want := `{"t":"2026-11-27T11:45:19.187Z","runnerId":"7427abf3d4a536ae","dir":"runner->broker","msg":{"type":"runner:info","name":"probe","types":["python"]}}`
	if line != want {
		t.Errorf("line\n got %s\nwant %s", line, want)
	}

	b := startBroker(t, Options{})
	register(t, b, "r1")
	var buf bytes.Buffer
	noErr(t, b.WriteTranscript(&buf))
	lineRE := regexp.MustCompile(`^\{"t":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",("runnerId":"r1",)?"dir":"[a-z>-]+","msg":.+\}$`)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Errorf("%d transcript lines, want 5:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		if !lineRE.MatchString(l) {
			t.Errorf("line %s is not in the transcripts' format", l)
		}
	}
}

func TestAuthIsRecorded(t *testing.T) {
	b := startBroker(t, Options{})
	postAuth(t, b, `{"token":"wrong-token"}`)
	tr := b.Transcript()
	if len(tr) != 2 || tr[0].Dir != DirHTTPRequest || tr[1].Dir != DirHTTPResponse {
		t.Fatalf("transcript %+v", tr)
	}
	if !strings.Contains(string(tr[0].Msg), `"body":{"token":"wrong-token"}`) || !strings.Contains(string(tr[1].Msg), `"status":403`) {
		t.Errorf("recorded %s / %s", tr[0].Msg, tr[1].Msg)
	}
}

func TestTranscriptLimitKeepsTheMostRecentEntries(t *testing.T) {
	b := startBroker(t, Options{TranscriptLimit: 3})
	for range 10 {
		postAuth(t, b, `{"token":"wrong-token"}`)
	}
	postAuth(t, b, `{"token":"last"}`)
	tr := b.Transcript()
	if len(tr) < 3 || len(tr) > 6 {
		t.Fatalf("%d entries kept with a limit of 3, want 3 to 6", len(tr))
	}
	if last := tr[len(tr)-2]; last.Dir != DirHTTPRequest || !strings.Contains(string(last.Msg), `"last"`) {
		t.Fatalf("the most recent request is not kept: %+v", last)
	}
}

func TestNoTranscriptKeepsNothing(t *testing.T) {
	b := startBroker(t, Options{NoTranscript: true})
	r := register(t, b, "r1")
	startTask(t, b, r, "o1", `{"code":"x"}`)
	postAuth(t, b, `{"token":"wrong-token"}`)
	if tr := b.Transcript(); len(tr) != 0 {
		t.Errorf("kept %d entries with NoTranscript, the first %+v", len(tr), tr[0])
	}
}
