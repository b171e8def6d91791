// Package python embeds pyrunner's Python runtime (the pyrunner_runtime
// package under runtime/) and documents the protocol between it and the Go
// side. It starts nothing itself: package pool does.
//
// # Processes
//
// A zygote (pyrunner_runtime.zygote) imports the runtime once and forks task
// processes on request; it never runs user code. A task process
// (pyrunner_runtime.child) serves tasks on its own channel and, in the
// default isolated mode, exits after one task. The spawn baseline starts a
// fresh interpreter per task that runs pyrunner_runtime.child directly.
//
// # Task channel (one per task process)
//
// An AF_UNIX SOCK_STREAM socket, fd 3 in a spawned child. Every frame is a
// 4-byte big-endian length followed by that many bytes of UTF-8 JSON, one
// object per frame.
//
//	Go -> child  {"op":"config", ...Config}    spawn mode only, first frame
//	Go -> child  {"op":"task","taskId":"...","settings":{...}}
//	child -> Go  {"op":"result","result":<any>,"print_args":[[str,...],...]}
//	child -> Go  {"op":"error","kind":"user"|"static",
//	              "error":{"message":str,"description":str?,"stack":str},
//	              "print_args":[...]}
//
// settings is broker:tasksettings.settings exactly as n8n sent it. NaN and
// ±Infinity in a result are encoded as null (what JavaScript's JSON.stringify
// does), so the broker can always parse the frame.
//
// # Zygote control socket
//
// An AF_UNIX SOCK_SEQPACKET socket, fd 3 of the zygote: one JSON object per
// packet, no length prefix. A spawn packet carries the new task process's
// channel as an SCM_RIGHTS file descriptor.
//
//	Go -> zygote  {"op":"config", ...Config}     first packet
//	zygote -> Go  {"op":"ready","pid":N,"version":"3.11.7"}
//	Go -> zygote  {"op":"spawn","id":N}  + fd
//	zygote -> Go  {"op":"spawned","id":N,"pid":P} | {"op":"spawnfailed","id":N,"error":str}
//	Go -> zygote  {"op":"kill","id":N,"pid":P,"signal":S}   signals P's process group if P is a
//	              live child forked for spawn N (not a later child that got P's number again)
//	zygote -> Go  {"op":"exited","pid":P,"code":C} | {"op":"exited","pid":P,"signal":S}
package python
