// Package e2e tests the built pyrunner binary as n8n sees it: a separate
// process configured by environment, talking to a broker over a real
// websocket. Most tests use the fake broker (broker/fakebroker); the
// tests named *N8N* run against a real n8n 2.41.1 and only when
// PYRUNNER_E2E_N8N=1 (make e2e-n8n, .ci/run).
package e2e
