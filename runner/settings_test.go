package runner

import "testing"

// The pool's workflow key is workflowId exactly as sent: absent is "",
// never the "Unknown" the logs show.
func TestSettingsWorkflowKey(t *testing.T) {
	tests := []struct {
		name, raw         string
		workflow, forLogs string
	}{
		{"sent", `{"code":"return []","nodeMode":"runOnceForAllItems","items":[],"workflowId":"wf1"}`, "wf1", "wf1"},
		{"absent", `{"code":"return []","nodeMode":"runOnceForAllItems","items":[]}`, "", "Unknown"},
		{"null", `{"code":"return []","nodeMode":"runOnceForAllItems","items":[],"workflowId":null}`, "", "Unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseSettings([]byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if s.Workflow != tt.workflow || s.WorkflowID != tt.forLogs {
				t.Fatalf("Workflow %q, WorkflowID %q; want %q, %q", s.Workflow, s.WorkflowID, tt.workflow, tt.forLogs)
			}
		})
	}
}
