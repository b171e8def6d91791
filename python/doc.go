// Package python embeds pyrunner's Python runtime (the pyrunner_runtime
// package under runtime/) and is the Go half of the wire between it and
// the Go side: the framing (frame.go), every message and its fields
// (messages.go, control.go, reply.go) and the configuration every Python
// process gets (Config). It starts nothing itself: package pool does.
//
// This comment is the protocol's description, and the table below is held
// to the code by tests: a field one side sends that the table does not
// list fails them, and the side that reads such a message refuses it.
//
// # Processes
//
// A zygote (pyrunner_runtime.zygote) imports the runtime once and forks task
// processes on request; it never runs user code. A task process
// (pyrunner_runtime.child) serves tasks on its own channel: in isolated
// mode one task, in reuse mode up to maxTasks. The spawn baseline starts a
// fresh interpreter per task that runs pyrunner_runtime.child directly.
//
// # Task channel (one per task process)
//
// An AF_UNIX SOCK_STREAM socket, fd 3 of a task process. Every frame is a
// 4-byte big-endian length followed by that many bytes of UTF-8 JSON, one
// object per frame. In order: Go sends "config" (spawn baseline only; a
// forked process inherits the zygote's); the process fences itself in,
// runs a warm-up task and sends "ready"; then, for each task, Go sends
// "task" and the process answers "result" or "error", after "compiled"
// when Go asked for it.
//
// Compiled code: a Code node that runs a thousand times is compiled once.
// Go asks ("wantCompiled") only a process that has run no user code yet,
// which sends the code object ("compiled": marshal, base64) after
// compiling and before running any of it; Go takes it only in that
// position, so no task can plant code another task will run. Later tasks
// with the same code get it back in "compiled" and skip parsing, analysis,
// rewriting and compiling. A reuse worker also keeps its own, and says so
// in its reply ("ownCompiled": true) when it ran its own copy: the code
// cache counts that a hit, not a miss (a count only; nothing else
// trusts it).
//
// "settings" is broker:tasksettings.settings exactly as n8n sent it;
// "analyzed": true says the code is known to pass the static analysis
// under these allowlists (the executor's verdict cache), so the process
// skips it. "result" is the JSON the code returned, with NaN and ±Infinity
// as null (what JavaScript's JSON.stringify does, so that n8n can parse
// it). "print_args" holds one array of strings per recorded print() call,
// at most Config.MaxPrints and then n8n's truncation entry. "kind" of an
// error is "user" (the code failed while running) or "static" (refused
// before running: syntax, security analysis, settings). "analysis":
// "passed" says the code got past the static analysis. "error" is an
// object, the "(error)" row: "description" may be absent, which n8n tells
// apart from empty; "stack" is the traceback through the user's frames.
//
// # Zygote control socket
//
// An AF_UNIX SOCK_SEQPACKET socket, fd 3 of the zygote: one JSON object per
// packet, no length prefix. Go sends "config"; the zygote answers "ready"
// once it has imported everything (its pid, Python version, and the
// Landlock ABI its task processes will use, 0 for none) or "failed" with
// the reason. A "spawn" packet carries the new task process's channel as an
// SCM_RIGHTS descriptor and "maxTasks" (1 in isolated mode); the zygote
// answers "spawned" with the process's pid, or "spawnfailed". Go may have
// several spawns under way; the zygote reads every packet queued, acts on
// each "kill" as it reads it, answers the spawns it cannot fork (no single
// descriptor, no free uid) at once, forks for the others back to back, and
// then answers each of them. "kill"
// signals the process group of pid if pid is still the zygote's unreaped
// child and was forked for spawn request id: a pid the kernel gave another
// process is never hit, nor one this zygote reaped and gave its next
// child. "exited" reports a task process's end: "code", or "signal" when
// a signal ended it.
//
// # Messages
//
// Every message besides its "op", by channel and sender:
//
//	channel  sender  op           fields
//	task     go      config       every field of Config
//	task     go      task         taskId analyzed compiled wantCompiled settings
//	task     child   ready        -
//	task     child   compiled     code
//	task     child   result       result print_args analysis ownCompiled
//	task     child   error        kind error print_args analysis ownCompiled
//	task     child   (error)      message description stack
//	control  go      config       every field of Config
//	control  zygote  ready        pid version landlock
//	control  zygote  failed       error
//	control  go      spawn        id maxTasks
//	control  zygote  spawned      id pid
//	control  zygote  spawnfailed  id error
//	control  go      kill         id pid signal
//	control  zygote  exited       pid code signal
package python
