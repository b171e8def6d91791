package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pyrunner/pyrunner/internal/jsonscan"
	"github.com/pyrunner/pyrunner/python"
)

// Code-node modes (docs/code-node.md §2).
const (
	ModeAllItems = "runOnceForAllItems"
	ModeEachItem = "runOnceForEachItem"
)

// settings is what the runner itself reads of broker:tasksettings.settings.
// items and the rest are passed through to Python undecoded.
type settings struct {
	Code           string
	NodeMode       string
	ContinueOnFail bool
	NodeID         string
	NodeName       string
	WorkflowID     string
	WorkflowName   string
	// Workflow is workflowId as sent, "" when absent: the pool's key in
	// workflow mode (WorkflowID says "Unknown" instead, for the logs).
	Workflow string
}

// parseSettings checks a settings object the way n8n's runner does, and
// reports every problem instead of only logging the first (n8n's runner
// then sends nothing and the task hangs until the broker's timeout).
func parseSettings(raw json.RawMessage) (settings, error) {
	// Members located, not decoded: items can be megabytes, and Python
	// parses them (and reports them if they are broken).
	fields := map[string][]byte{}
	err := jsonscan.EachMember(raw, func(key string, value []byte) error {
		fields[key] = value
		return nil
	})
	if err != nil {
		return settings{}, errors.New(python.Text("settings_not_object"))
	}
	var problems []string
	str := func(name string, required bool) string {
		v, ok := fields[name]
		if !ok || string(v) == "null" {
			if required {
				problems = append(problems, python.Text("missing_field", "field", name))
			}
			return ""
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			if required {
				problems = append(problems, python.Text("invalid_field", "field", name, "kind", "a string"))
			}
			return ""
		}
		return s
	}
	s := settings{
		Code:         str("code", true),
		NodeMode:     str("nodeMode", true),
		NodeID:       orUnknown(str("nodeId", false)),
		NodeName:     orUnknown(str("nodeName", false)),
		Workflow:     str("workflowId", false),
		WorkflowName: orUnknown(str("workflowName", false)),
	}
	s.WorkflowID = orUnknown(s.Workflow)
	if s.NodeMode != "" && s.NodeMode != ModeAllItems && s.NodeMode != ModeEachItem {
		problems = append(problems, python.Text("unknown_node_mode", "mode", s.NodeMode))
	}
	if v, ok := fields["items"]; !ok || string(v) == "null" {
		problems = append(problems, python.Text("missing_field", "field", "items"))
	} else if v[0] != '[' {
		problems = append(problems, python.Text("invalid_field", "field", "items", "kind", "an array"))
	}
	if v, ok := fields["continueOnFail"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &s.ContinueOnFail); err != nil {
			problems = append(problems, python.Text("invalid_field", "field", "continueOnFail", "kind", "a boolean"))
		}
	}
	if len(problems) > 0 {
		return s, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return s, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}
