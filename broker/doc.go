// Package broker speaks n8n's task-broker protocol: the message catalogue
// (messages.go), the auth-token to grant-token exchange (auth.go) and the
// websocket client with its reconnect policy (client.go).
//
// It knows nothing of Python or of tasks beyond their ids: the runner package
// decides what to send. Read Message and Client first.
//
// The fake broker used by tests and by `pyrunner demo` lives in
// broker/fakebroker and behaves like n8n 2.41.1's broker.
package broker
