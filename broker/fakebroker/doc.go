// Package fakebroker is a faithful fake of n8n 2.41.1's task broker: a real
// HTTP and WebSocket server on loopback that runners authenticate against,
// connect to, offer to and run tasks for, exactly as they would against n8n.
//
// It is used by the runner's tests, by end-to-end tests that run the built
// pyrunner binary, and by `pyrunner demo`. Where convenience and n8n disagree,
// it does what n8n does (docs/protocol.md §2–§9, docs/conformance.md, and
// the frames recorded from n8n 2.41.1, docs/n8n-observed.md §12); where
// those are silent it follows n8n's task-broker sources, and says so in a
// comment.
//
// It owns the broker side only: auth and grant tokens, the upgrade checks,
// registration, offer matching, task timeouts, heartbeat, drain. It knows
// nothing of Python. The requester (n8n's Code node) is played by the test
// through Request.
//
// Read Broker (broker.go) and Request (request.go) first; Frame
// (transcript.go) is what tests assert on.
package fakebroker
