// Package bootstrap is what pyrunner does before any command runs. First
// HideSecrets: no token may stay in the process's initial environment,
// which /proc/<pid>/environ shows for its whole life, so pyrunner hands the
// tokens over a pipe to a re-executed image of itself (same pid, an
// environment without them) and reads its configuration through the
// returned Secrets. Then, when pyrunner is a container's PID 1, RunInit
// does init's job: it runs the real pyrunner as its child, passes signals
// on and reaps the orphans a dead zygote leaves.
//
// It knows nothing of the commands: main calls it, then runs one.
package bootstrap
