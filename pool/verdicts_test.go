package pool

import "testing"

// TestVerdictsRememberOnlyTheAnalysis: a refusal and a reported pass are
// remembered; an error that says nothing of the analysis is not.
func TestVerdictsRememberOnlyTheAnalysis(t *testing.T) {
	refusal := &TaskError{Kind: KindStatic, Message: securityViolations}
	cases := []struct {
		name        string
		res         Result
		known       bool
		wantRefused bool
	}{
		{"refused", Result{Err: refusal}, true, true},
		{"ran", Result{Result: []byte(`[]`), AnalysisPassed: true}, true, false},
		{"user error after the analysis", Result{Err: &TaskError{Kind: KindUser, Message: "boom"}, AnalysisPassed: true}, true, false},
		{"syntax error", Result{Err: &TaskError{Kind: KindStatic, Message: "invalid syntax"}}, false, false},
		{"analysis failed", Result{Err: &TaskError{Kind: KindStatic, Message: "The code could not be checked for security violations"}}, false, false},
		{"killed before it answered", Result{Err: &TaskError{Kind: KindUser, Message: "Task subprocess exited with code -9"}}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newVerdicts()
			v.record("code", c.res)
			known, refused := v.lookup("code")
			if known != c.known || (refused != nil) != c.wantRefused {
				t.Fatalf("lookup: known %v refused %v, want known %v refused %v", known, refused, c.known, c.wantRefused)
			}
			if c.wantRefused && refused != refusal {
				t.Fatalf("refusal %+v, want the recorded one", refused)
			}
		})
	}
}
