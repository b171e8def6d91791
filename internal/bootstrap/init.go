package bootstrap

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// initChildVar marks a pyrunner started by a pyrunner that is PID 1.
const initChildVar = "PYRUNNER_INIT_CHILD"

// NeedsInit: pyrunner is PID 1 (a container's entrypoint), and so the
// parent of every orphan in the container. When a zygote dies abruptly its
// task processes, and whatever they detached, are handed to PID 1; a Go
// program reaps only the children it started, so they would stay zombies
// for good. pyrunner then does init's job itself instead of needing tini.
func NeedsInit() bool {
	return os.Getpid() == 1 && os.Getenv(initChildVar) == ""
}

// forwarded are the signals PID 1 passes on to the pyrunner it runs.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// RunInit runs pyrunner, with the same arguments, as its child; passes
// signals on to it; reaps every process that ends up as its child; and
// exits as the child exits (128+n for a signal n, as a shell reports it).
// The secrets go to the child through a pipe, as in HideSecrets.
func RunInit(secrets Secrets) int {
	_ = SetNotDumpable()
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	children := make(chan os.Signal, 1)
	signal.Notify(children, syscall.SIGCHLD)

	cmd := exec.Command("/proc/self/exe")
	cmd.Args = os.Args
	cmd.Env = append(os.Environ(), initChildVar+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if len(secrets) > 0 {
		r, err := secretsPipe(secrets)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pyrunner: handing the secrets to the runner: %v\n", err)
			return 1
		}
		cmd.ExtraFiles = []*os.File{r} // fd 3
		cmd.Env = append(cmd.Env, handoffVar+"=3")
	}
	clear(secrets)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "pyrunner: starting the runner: %v\n", err)
		return 1
	}
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	child := cmd.Process.Pid
	for {
		select {
		case sig := <-sigs:
			_ = syscall.Kill(child, sig.(syscall.Signal))
		case <-children:
			// One SIGCHLD may stand for several exits: reap all there are.
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if err == syscall.EINTR {
					continue
				}
				if err != nil || pid <= 0 {
					break
				}
				if pid == child {
					// Leaving ends the container: the kernel kills what is left.
					return exitCode(status)
				}
			}
		}
	}
}

func exitCode(status syscall.WaitStatus) int {
	if status.Signaled() {
		return 128 + int(status.Signal())
	}
	return status.ExitStatus()
}

// SetNotDumpable keeps other processes of the same user from reading this
// one's memory (ptrace, /proc/<pid>/mem), which holds the tokens.
func SetNotDumpable() error {
	const prSetDumpable = 4
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); errno != 0 {
		return errno
	}
	return nil
}
