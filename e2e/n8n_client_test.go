package e2e

// A client for n8n's REST API and webhooks: owner sign-in, workflows with
// a Python Code node, their executions (docs/n8n-observed.md §5–§9).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/internal/excerpt"
)

// n8nClient calls n8n's REST API and webhooks. n8n ties the auth cookie to
// the browser-id header, so every call sends the same one (docs/n8n-observed.md §5).
type n8nClient struct {
	base string
	http *http.Client
}

func newN8NClient(base string) *n8nClient {
	jar, _ := cookiejar.New(nil)
	// Longer than N8N_RUNNERS_TASK_REQUEST_TIMEOUT (20 s), so that a webhook
	// whose task found no runner answers rather than times out.
	return &n8nClient{base: base, http: &http.Client{Jar: jar, Timeout: 90 * time.Second}}
}

// n8nError is a non-2xx answer.
type n8nError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *n8nError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, excerpt.Of(e.Body))
}

// call sends body as JSON and decodes the answer's "data" into out; an
// answer other than 2xx is an *n8nError.
func (c *n8nClient) call(ctx context.Context, method, path string, body, out any) error {
	raw, err := c.do(ctx, method, path, body)
	if err != nil || out == nil {
		return err
	}
	var envelope struct{ Data json.RawMessage }
	if err := json.Unmarshal(raw, &envelope); err != nil {
		return fmt.Errorf("%s %s: %w in %s", method, path, err, excerpt.Of(string(raw)))
	}
	if err := json.Unmarshal(envelope.Data, out); err != nil {
		return fmt.Errorf("%s %s: %w in %s", method, path, err, excerpt.Of(string(raw)))
	}
	return nil
}

func (c *n8nClient) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, reader)
	if err != nil {
		return nil, err
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("browser-id", "pyrunner-e2e")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return raw, &n8nError{Method: method, Path: path, Status: resp.StatusCode, Body: string(raw)}
	}
	return raw, nil
}

// signIn sets up the owner account, which a database allows once (a repeat
// is answered 400), and logs in.
func (c *n8nClient) signIn(ctx context.Context) error {
	err := c.call(ctx, "POST", "/rest/owner/setup", map[string]string{
		"email": n8nOwnerEmail, "firstName": "E2E", "lastName": "Owner", "password": n8nOwnerPassword,
	}, nil)
	var nerr *n8nError
	if err != nil && !(errors.As(err, &nerr) && nerr.Status == http.StatusBadRequest) {
		return err
	}
	var user struct{ ID string }
	if err := c.call(ctx, "POST", "/rest/login", map[string]string{
		"emailOrLdapLoginId": n8nOwnerEmail, "password": n8nOwnerPassword,
	}, &user); err != nil {
		return err
	}
	if user.ID == "" {
		return errors.New("login answered without a user id")
	}
	return nil
}

// n8nWorkflow is an active workflow whose webhook is registered.
type n8nWorkflow struct {
	api  *n8nClient
	id   string
	path string
}

// deployPython creates and activates a Webhook → Split Out → Code workflow
// (docs/n8n-observed.md §6) whose Code node runs code in mode, waits until its
// webhook is registered, and removes the workflow in the test's Cleanup.
func (e *n8nEnv) deployPython(t *testing.T, code, mode string) *n8nWorkflow {
	t.Helper()
	return e.deployPythonNode(t, code, mode, nil)
}

// deployPythonNode is deployPython with extra properties on the Code node,
// such as {"onError": "continueRegularOutput"}.
func (e *n8nEnv) deployPythonNode(t *testing.T, code, mode string, node map[string]any) *n8nWorkflow {
	t.Helper()
	return e.api.deployPythonNode(t, code, mode, node)
}

// deployPythonNode deploys the workflow of deployPython through c, with
// extra properties on the Code node.
func (c *n8nClient) deployPythonNode(t *testing.T, code, mode string, node map[string]any) *n8nWorkflow {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	begin := time.Now()
	path := "e2e-" + randomHex(8)
	var created struct{ ID, VersionID string }
	if err := c.call(ctx, "POST", "/rest/workflows", pythonWorkflow(path, code, mode, node), &created); err != nil {
		t.Fatal(err)
	}
	w := &n8nWorkflow{api: c, id: created.ID, path: path}
	t.Cleanup(func() {
		if err := w.remove(context.Background()); err != nil {
			t.Error(err)
		}
	})
	var activated struct{ Active bool }
	if err := c.call(ctx, "POST", "/rest/workflows/"+w.id+"/activate",
		map[string]string{"versionId": created.VersionID}, &activated); err != nil {
		t.Fatal(err)
	}
	if !activated.Active {
		t.Fatalf("workflow %s is not active after activation", w.id)
	}
	if err := w.waitWebhook(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("workflow deployed in %s", time.Since(begin).Round(time.Millisecond))
	return w
}

// waitWebhook polls GET /webhook/<path>: activation registers the webhook
// asynchronously, and once it exists n8n answers that it is not registered
// for GET, which shows the POST webhook is there (docs/n8n-observed.md §7).
func (w *n8nWorkflow) waitWebhook(ctx context.Context) error {
	for {
		body, err := w.api.do(ctx, "GET", "/webhook/"+w.path, nil)
		if err != nil && strings.Contains(string(body), "not registered for GET") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("webhook %s not registered in time; last answer: %v", w.path, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// post sends {"items": items} to the webhook and returns the answer.
func (w *n8nWorkflow) post(t *testing.T, items any) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	status, body, err := w.send(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("webhook answered %d in %s", status, time.Since(begin).Round(time.Millisecond))
	return status, body
}

// send posts {"items": items} to the webhook and returns n8n's answer, or
// an error where none came.
func (w *n8nWorkflow) send(ctx context.Context, items any) (int, []byte, error) {
	body, err := w.api.do(ctx, "POST", "/webhook/"+w.path, map[string]any{"items": items})
	var nerr *n8nError
	switch {
	case err == nil:
		return http.StatusOK, body, nil
	case errors.As(err, &nerr):
		return nerr.Status, body, nil
	}
	return 0, nil, err
}

// lastExecution waits until the workflow's newest execution has finished
// and returns its decoded run data (docs/n8n-observed.md §8).
func (w *n8nWorkflow) lastExecution(t *testing.T) (status string, data map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	filter, _ := json.Marshal(map[string]string{"workflowId": w.id})
	var list struct {
		Results []struct{ ID, Status string }
	}
	for {
		if err := w.api.call(ctx, "GET", "/rest/executions?filter="+url.QueryEscape(string(filter)), nil, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Results) > 0 && list.Results[0].Status != "new" && list.Results[0].Status != "running" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no finished execution of workflow %s: %+v", w.id, list.Results)
		case <-time.After(100 * time.Millisecond):
		}
	}
	var execution struct{ Status, Data string }
	if err := w.api.call(ctx, "GET", "/rest/executions/"+list.Results[0].ID, nil, &execution); err != nil {
		t.Fatal(err)
	}
	decoded, err := parseFlatted(execution.Data)
	if err != nil {
		t.Fatalf("execution data: %v", err)
	}
	data, ok := decoded.(map[string]any)
	if !ok {
		t.Fatalf("execution data is %T, not an object", decoded)
	}
	return execution.Status, data
}

// remove deactivates, archives and deletes the workflow (docs/n8n-observed.md §9).
func (w *n8nWorkflow) remove(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	prefix := "/rest/workflows/" + w.id
	if err := errors.Join(
		w.api.call(ctx, "POST", prefix+"/deactivate", map[string]any{}, nil),
		w.api.call(ctx, "POST", prefix+"/archive", map[string]any{}, nil),
	); err != nil {
		return err
	}
	// n8n 2.41.1 unpublishes asynchronously: a delete right after the
	// deactivation can get 409 "Workflow is still being unpublished".
	for {
		err := w.api.call(ctx, "DELETE", prefix, nil, nil)
		var ne *n8nError
		if err == nil || !errors.As(err, &ne) || ne.Status != http.StatusConflict {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pythonWorkflow is the workflow of docs/n8n-observed.md §6: the webhook answers
// with the Code node's output items' json objects.
func pythonWorkflow(path, code, mode string, extra map[string]any) map[string]any {
	link := func(node string) map[string]any {
		return map[string]any{"main": []any{[]any{map[string]any{"node": node, "type": "main", "index": 0}}}}
	}
	return map[string]any{
		"name": "pyrunner e2e " + path,
		"nodes": []any{
			map[string]any{
				"id": "6e2e0000-0000-4000-8000-000000000001", "name": "Webhook",
				"type": "n8n-nodes-base.webhook", "typeVersion": 2.1, "position": []int{0, 0}, "webhookId": path,
				"parameters": map[string]any{"httpMethod": "POST", "path": path, "responseMode": "lastNode",
					"responseData": "allEntries", "options": map[string]any{}},
			},
			map[string]any{
				"id": "6e2e0000-0000-4000-8000-000000000002", "name": "Split Out",
				"type": "n8n-nodes-base.splitOut", "typeVersion": 1, "position": []int{220, 0},
				"parameters": map[string]any{"fieldToSplitOut": "body.items", "options": map[string]any{}},
			},
			codeNode(code, mode, extra),
		},
		"connections": map[string]any{"Webhook": link("Split Out"), "Split Out": link("Code")},
		"settings": map[string]any{"executionOrder": "v1", "saveManualExecutions": true,
			"saveDataSuccessExecution": "all", "saveDataErrorExecution": "all"},
		"pinData": map[string]any{},
	}
}

func codeNode(code, mode string, extra map[string]any) map[string]any {
	node := map[string]any{
		"id": "6e2e0000-0000-4000-8000-000000000003", "name": "Code",
		"type": "n8n-nodes-base.code", "typeVersion": 2, "position": []int{440, 0},
		"parameters": map[string]any{"language": "pythonNative", "mode": mode, "pythonCode": code},
	}
	for k, v := range extra {
		node[k] = v
	}
	return node
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
