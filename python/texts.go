package python

import (
	_ "embed"
	"encoding/json"
	"strings"
)

// textsJSON holds texts both sides use: the runner checks a task's
// settings before it hands the task over, and the task process checks
// them again in the same words (texts.py).
//
//go:embed runtime/pyrunner_runtime/texts.json
var textsJSON []byte

var texts = func() map[string]string {
	var m map[string]string
	if err := json.Unmarshal(textsJSON, &m); err != nil {
		panic("python: texts.json: " + err.Error()) // embedded at build time
	}
	return m
}()

// Text is the text called name, with each {key} replaced: pairs are key,
// value, key, value… An unknown name is returned as it is (a test checks
// that every name used exists).
func Text(name string, pairs ...string) string {
	t, ok := texts[name]
	if !ok {
		return name
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		t = strings.ReplaceAll(t, "{"+pairs[i]+"}", pairs[i+1])
	}
	return t
}
