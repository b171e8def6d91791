package python

import (
	"encoding/json"
	"fmt"
)

// ControlMsg is a message the zygote sends on its control socket. Which
// fields are set depends on Op (doc.go's table).
type ControlMsg struct {
	Op  string `json:"op"`
	ID  int    `json:"id"`
	Pid int    `json:"pid"`
	// Code is the exit code of an exited process (nil when a signal ended it).
	Code   *int   `json:"code"`
	Signal int    `json:"signal"`
	Error  string `json:"error"`
	// Version is the zygote's Python version, in "ready".
	Version string `json:"version"`
	// Landlock is the ABI the task processes will use, in "ready"; 0: none.
	Landlock *int `json:"landlock"`
}

// DecodeControl reads one message from the zygote, refusing fields the
// protocol does not list for its op.
func DecodeControl(b []byte) (ControlMsg, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return ControlMsg{}, fmt.Errorf("undecodable control message: %w", err)
	}
	var m ControlMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return ControlMsg{}, fmt.Errorf("undecodable control message: %w", err)
	}
	if err := checkFields(message{ControlChannel, FromZygote, m.Op}, keysOf(fields)); err != nil {
		return ControlMsg{}, err
	}
	return m, nil
}

// SpawnMsg asks the zygote for a task process that serves up to maxTasks
// tasks; the process's channel goes with it as SCM_RIGHTS.
func SpawnMsg(id, maxTasks int) []byte {
	b, _ := json.Marshal(struct {
		Op       string `json:"op"`
		ID       int    `json:"id"`
		MaxTasks int    `json:"maxTasks"`
	}{"spawn", id, maxTasks})
	return b
}

// KillMsg asks the zygote to send sig to the process group of its child
// pid, if pid is still its unreaped child and was forked for spawn request
// id (not a later child that got pid's number again).
func KillMsg(id, pid, sig int) []byte {
	b, _ := json.Marshal(struct {
		Op     string `json:"op"`
		ID     int    `json:"id"`
		Pid    int    `json:"pid"`
		Signal int    `json:"signal"`
	}{"kill", id, pid, sig})
	return b
}
