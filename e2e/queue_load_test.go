package e2e

// Bursts of webhook calls for the queue-mode tests, the check of every
// answer against its own input, and what n8n stored for each execution.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/internal/loadgen"
)

// queueCode is the Code node of the queue-mode workflows: after sleeping
// the given seconds (so that a fault finds tasks running), it answers each
// item with values only that item gives: its id, n squared and the id's
// SHA-256. It imports what deploy/kubernetes' allowlist allows.
func queueCode(sleep float64) string {
	return fmt.Sprintf(`import hashlib, time
time.sleep(%g)
out = []
for it in _items:
    j = it['json']
    out.append({'json': {'id': j['id'], 'sq': j['n'] ** 2, 'digest': hashlib.sha256(j['id'].encode()).hexdigest()}})
return out`, sleep)
}

// queueCall is one webhook call of a burst.
type queueCall struct {
	id     string // its first item's id, which finds its execution
	status int
	body   []byte
	err    error // no answer
	took   time.Duration
}

// queueInput is call i's items: two, with ids of the burst and the call.
func queueInput(burst string, i int) []map[string]any {
	return []map[string]any{
		{"id": fmt.Sprintf("%s-%03d-a", burst, i), "n": i},
		{"id": fmt.Sprintf("%s-%03d-b", burst, i), "n": i + 1000},
	}
}

// queueAnswer is what the workflow must answer to input.
func queueAnswer(input []map[string]any) []any {
	var out []any
	for _, it := range input {
		id, n := it["id"].(string), it["n"].(int)
		sum := sha256.Sum256([]byte(id))
		out = append(out, map[string]any{"id": id, "sq": float64(n * n), "digest": hex.EncodeToString(sum[:])})
	}
	return out
}

// burst is n webhook calls, concurrency at a time, running in the
// background; answered counts the calls that came back.
type burst struct {
	name     string
	calls    []queueCall
	answered atomic.Int64
	done     chan struct{}
	result   loadgen.Result // once done: the rate and the round trips
}

// startBurst fires n calls at w, concurrency at a time, as the closed
// loop of the benchmarks does. A call gives up after callLimit: n8n has
// not answered it.
func startBurst(ctx context.Context, w *n8nWorkflow, n, concurrency int, callLimit time.Duration) *burst {
	b := &burst{name: randomHex(4), calls: make([]queueCall, n), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.result = loadgen.ClosedLoop(n, concurrency, func(i int) (time.Duration, bool) {
			input := queueInput(b.name, i)
			callCtx, cancel := context.WithTimeout(ctx, callLimit)
			defer cancel()
			start := time.Now()
			status, body, err := w.send(callCtx, input)
			c := queueCall{id: input[0]["id"].(string), status: status, body: body, err: err, took: time.Since(start)}
			b.calls[i] = c
			b.answered.Add(1)
			return c.took, err == nil && status == http.StatusOK
		})
	}()
	return b
}

// wait waits for every call of the burst to come back.
func (b *burst) wait() *burst {
	<-b.done
	return b
}

// waitAnswered waits until at least n calls have come back.
func (b *burst) waitAnswered(t *testing.T, n int64) {
	t.Helper()
	for b.answered.Load() < n {
		select {
		case <-b.done:
			t.Fatalf("the burst ended before %d answers", n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The answers n8n gives to a webhook call whose execution failed: its
// workflow failed (the execution has the error), or main refused the call
// while its check of the database connection failed (no execution).
const (
	answerWorkflowError = `{"message":"Error in workflow"}`
	answerDBNotReady    = "Database is not ready!"
)

// refused reports whether n8n refused the call before running anything.
func (c queueCall) refused() bool {
	return c.err == nil && c.status == http.StatusServiceUnavailable && strings.Contains(string(c.body), answerDBNotReady)
}

// check fails the test for an answer 200 that is not the call's own
// input's, for any other answer than n8n's for a failed execution, and,
// unless unansweredOK, for a call n8n never answered. It returns the calls
// not answered 200.
func (b *burst) check(t *testing.T, unansweredOK bool) (notOK []queueCall) {
	t.Helper()
	for i, c := range b.calls {
		switch {
		case c.err != nil:
			if !unansweredOK {
				t.Errorf("call %d (%s) got no answer (%v after %s)", i, c.id, c.err, c.took.Round(time.Millisecond))
			}
			notOK = append(notOK, c)
		case c.status == http.StatusOK:
			var got any
			if err := json.Unmarshal(c.body, &got); err != nil {
				t.Errorf("call %d answered 200 with %s", i, c.body)
				continue
			}
			// The same JSON numbers as an answer decoded from the wire.
			want, _ := json.Marshal(queueAnswer(queueInput(b.name, i)))
			var wantV any
			_ = json.Unmarshal(want, &wantV)
			if !reflect.DeepEqual(got, wantV) {
				t.Errorf("call %d answered %s, want %s", i, c.body, want)
			}
		case c.status == http.StatusInternalServerError && strings.TrimSpace(string(c.body)) == answerWorkflowError, c.refused():
			notOK = append(notOK, c)
		default:
			t.Errorf("call %d answered %d %s", i, c.status, c.body)
		}
	}
	return notOK
}

// summary is "N calls, R/s, round trip p50 D: S answered 200, F failed,
// U unanswered".
func (b *burst) summary() string {
	ok, failed, unanswered := 0, 0, 0
	for _, c := range b.calls {
		switch {
		case c.err != nil:
			unanswered++
		case c.status == http.StatusOK:
			ok++
		default:
			failed++
		}
	}
	return fmt.Sprintf("%d calls, %.1f/s, round trip p50 %.0f ms: %d answered 200, %d failed, %d unanswered",
		len(b.calls), b.result.PerSecond, b.result.P50ms, ok, failed, unanswered)
}

// queueExecution is what n8n stored for one execution.
type queueExecution struct {
	ID, Status       string
	StartedAt        time.Time
	StoppedAt        time.Time
	inputID          string        // the first item the webhook received
	errorMessage     string        // resultData.error.message
	errorDescription string        // and its description
	codeTime         time.Duration // the Code node's executionTime
}

// executions returns every stored execution of w, at most 100, waiting up
// to d until none is new or running any more. One page: n8n 2.41.1 sorts
// a page by start time but takes the next one by id, so that with
// executions running side by side a page can repeat or skip one.
func executions(t *testing.T, w *n8nWorkflow, d time.Duration) []queueExecution {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	filter, _ := json.Marshal(map[string]string{"workflowId": w.id})
	q := url.Values{"filter": {string(filter)}, "limit": {"100"}}
	for {
		var page struct {
			Count   int
			Results []queueExecution
		}
		if err := w.api.call(ctx, "GET", "/rest/executions?"+q.Encode(), nil, &page); err != nil {
			t.Fatal(err)
		}
		unfinished := slices.ContainsFunc(page.Results, func(e queueExecution) bool {
			return e.Status == "new" || e.Status == "running" || e.Status == "waiting"
		})
		// The count leaves out executions that have not finished.
		if !unfinished && page.Count != len(page.Results) {
			t.Fatalf("workflow %s has %d executions, %d listed: the tests keep to 100 a workflow", w.id, page.Count, len(page.Results))
		}
		if !unfinished {
			return page.Results
		}
		select {
		case <-ctx.Done():
			t.Fatalf("executions of workflow %s still unfinished after %s", w.id, d)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// detail reads e's run data: the webhook's first item, the error, the
// Code node's time.
func (e *queueExecution) detail(t *testing.T, api *n8nClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	var stored struct{ Data string }
	if err := api.call(ctx, "GET", "/rest/executions/"+e.ID, nil, &stored); err != nil {
		t.Fatal(err)
	}
	decoded, err := parseFlatted(stored.Data)
	if err != nil {
		t.Fatalf("execution %s: %v", e.ID, err)
	}
	result, _ := lookup(decoded, "resultData").(map[string]any)
	e.inputID, _ = lookup(result, "runData", "Webhook", 0, "data", "main", 0, 0, "json", "body", "items", 0, "id").(string)
	e.errorMessage, _ = lookup(result, "error", "message").(string)
	e.errorDescription, _ = lookup(result, "error", "description").(string)
	if ms, ok := lookup(result, "runData", "Code", 0, "executionTime").(float64); ok {
		e.codeTime = time.Duration(ms * float64(time.Millisecond))
	}
}

// lookup follows keys (strings into objects, ints into arrays) and
// returns nil where the path does not exist.
func lookup(v any, path ...any) any {
	for _, k := range path {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// checkExecutions checks what n8n stored for a burst at w: none left
// unfinished; one execution per call n8n did not refuse; as many
// successes as answers 200, plus the calls never answered whose execution
// succeeded; and for every other call, an execution that failed with
// n8n's message. It returns each distinct (answer, stored
// outcome) of the calls not answered 200, with its count: what the user
// saw.
func checkExecutions(t *testing.T, w *n8nWorkflow, b *burst) []string {
	t.Helper()
	all := executions(t, w, 2*time.Minute)
	want, answered, unanswered := len(b.calls), 0, 0
	for _, c := range b.calls {
		switch {
		case c.refused():
			want--
		case c.err != nil:
			unanswered++
		case c.status == http.StatusOK:
			answered++
		}
	}
	// Successes are read only to find an unanswered call's execution, or
	// to say why the counts are off.
	readAll := unanswered > 0 || len(all) != want
	byInput := map[string][]*queueExecution{}
	succeeded := 0
	for i := range all {
		e := &all[i]
		if e.Status == "success" {
			succeeded++
		}
		if e.Status != "success" || readAll {
			e.detail(t, w.api)
			byInput[e.inputID] = append(byInput[e.inputID], e)
		}
	}
	if len(all) != want {
		t.Errorf("%d executions stored for %d calls n8n took", len(all), want)
		for id, es := range byInput {
			if len(es) == 1 {
				continue
			}
			for _, e := range es {
				t.Logf("input %q: execution %s %s %s..%s", id, e.ID, e.Status, e.StartedAt, e.StoppedAt)
			}
		}
	}
	seen := map[string]int{}
	for _, c := range b.calls {
		es := byInput[c.id]
		switch {
		case c.err == nil && c.status == http.StatusOK:
			continue
		case c.refused():
			if len(es) > 0 {
				t.Errorf("call %s was refused, yet execution %s has its input", c.id, es[0].ID)
			}
			seen[fmt.Sprintf("webhook %d %q; no execution", c.status, answerDBNotReady)]++
			continue
		case len(es) == 0 && len(byInput[""]) > 0:
			// An execution that failed before a worker ran it (while Redis
			// restarts, say) is stored without its input: any such one will
			// do, each for one call.
			es = byInput[""][:1]
			byInput[""] = byInput[""][1:]
		case len(es) != 1:
			t.Errorf("call %s (%d %s, %v): %d executions have its input", c.id, c.status, c.body, c.err, len(es))
			continue
		}
		e := es[0]
		answer := "no answer"
		if c.err == nil {
			answer = fmt.Sprintf("webhook %d %s", c.status, strings.TrimSpace(string(c.body)))
		}
		switch {
		case e.Status == "success" && c.err != nil:
			answered++
		case e.Status == "error" && e.errorMessage != "":
		default:
			// Crashed: n8n gave up on it (its queue recovery marks executions
			// whose jobs are gone so): the execution is lost.
			t.Errorf("call %s (%s): execution %s is %s with error %q", c.id, answer, e.ID, e.Status, e.errorMessage)
		}
		seen[fmt.Sprintf("%s; execution %s %q", answer, e.Status, e.errorMessage)]++
	}
	if succeeded != answered {
		t.Errorf("%d executions succeeded, %d calls were answered 200 or never answered with a successful execution", succeeded, answered)
	}
	var lines []string
	for k, n := range seen {
		lines = append(lines, fmt.Sprintf("%d× %s", n, k))
	}
	sort.Strings(lines)
	return lines
}

// runnerMetrics scrapes w's pyrunner's /metrics: value by series, as
// `name{labels}`.
func runnerMetrics(t *testing.T, w *queueWorker) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", w.healthURL()+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s's pyrunner /metrics: %v", w.name, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil && i > 0 {
			out[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

const (
	metricSucceeded = `pyrunner_tasks_finished_total{outcome="success"}`
	metricRunning   = `pyrunner_tasks_in_progress`
	metricConnects  = `pyrunner_broker_connections_total`
	metricTaskSum   = `pyrunner_tasks_duration_seconds_sum{outcome="success"}`
	metricTaskCount = `pyrunner_tasks_duration_seconds_count{outcome="success"}`
)
