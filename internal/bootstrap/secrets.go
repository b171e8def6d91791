package bootstrap

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// SecretVars are never left in pyrunner's environment: the kernel keeps a
// process's initial environment readable at /proc/<pid>/environ for its
// whole life, and unsetting a variable in Go does not change that copy.
var SecretVars = []string{"N8N_RUNNERS_GRANT_TOKEN", "N8N_RUNNERS_AUTH_TOKEN"}

// The re-execution must happen on the main thread. execve from another
// thread leaves the process with that thread's kernel task, which never had
// the parent-death signal a launcher set (PR_SET_PDEATHSIG: "die with me"),
// so pyrunner would outlive a launcher that was killed. The main goroutine
// runs on the main thread during init; the lock keeps it there until
// HideSecrets is done with it.
func init() { runtime.LockOSThread() }

// handoffVar names the descriptor on which a re-executed pyrunner finds
// the secrets it was started with.
const handoffVar = "PYRUNNER_SECRETS_FD"

// Secrets are the secret variables pyrunner was started with, by name
// (NAME, or NAME_FILE when the secret was given as a file); empty when it
// was started with none.
type Secrets map[string]string

// HideSecrets makes sure no secret stays in this process's initial
// environment. If the environment holds one, it reads the secrets (from
// the variables or their _FILE), writes them into a pipe and re-executes
// pyrunner, same pid, with an environment without them; the new image
// reads them back from the pipe. It returns the secrets (empty when there
// were none) and only returns from the second image or when nothing needed
// hiding.
func HideSecrets() (Secrets, error) {
	defer runtime.UnlockOSThread() // reached only when not re-executing
	if fd := os.Getenv(handoffVar); fd != "" {
		os.Unsetenv(handoffVar)
		return receiveSecrets(fd)
	}
	secrets := Secrets{}
	var env []string
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if isSecretVar(name) {
			secrets[name] = value
			continue
		}
		env = append(env, kv)
	}
	if len(secrets) == 0 {
		return secrets, nil
	}
	// The direct variable wins over its _FILE, as in the configuration.
	for _, name := range SecretVars {
		if _, ok := secrets[name]; ok {
			delete(secrets, name+"_FILE")
		}
	}

	r, err := secretsPipe(secrets)
	if err != nil {
		return nil, fmt.Errorf("hiding secrets: %w", err)
	}
	// Inherit the read end across exec (os.Pipe sets close-on-exec).
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, r.Fd(), syscall.F_SETFD, 0); errno != 0 {
		return nil, fmt.Errorf("hiding secrets: %w", errno)
	}
	env = append(env, handoffVar+"="+strconv.Itoa(int(r.Fd())))
	err = syscall.Exec("/proc/self/exe", os.Args, env)
	return nil, fmt.Errorf("hiding secrets: re-executing pyrunner: %w", err)
}

// secretsPipe returns the read end of a pipe holding the secrets as JSON,
// for a pyrunner started or re-executed with handoffVar naming it.
func secretsPipe(secrets Secrets) (*os.File, error) {
	payload, _ := json.Marshal(secrets)
	// A pipe holds 64 KiB: tokens are far smaller, so this cannot block.
	if len(payload) > 60000 {
		return nil, fmt.Errorf("%d bytes of secrets is too much", len(payload))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	if _, err := w.Write(payload); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// isSecretVar: a token variable, or its _FILE naming the file that holds
// it. The _FILE's path is handed over like a token (the config reads the
// file after the re-exec), so that not even the path stays in the
// environment.
func isSecretVar(name string) bool {
	for _, s := range SecretVars {
		if name == s || name == s+"_FILE" {
			return true
		}
	}
	return false
}

func receiveSecrets(fdText string) (Secrets, error) {
	fd, err := strconv.Atoi(fdText)
	if err != nil {
		return nil, fmt.Errorf("receiving secrets: bad %s %q", handoffVar, fdText)
	}
	f := os.NewFile(uintptr(fd), "secrets")
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("receiving secrets: %w", err)
	}
	secrets := Secrets{}
	if err := json.Unmarshal(b, &secrets); err != nil {
		return nil, fmt.Errorf("receiving secrets: %w", err)
	}
	return secrets, nil
}

// Lookup serves the handed-over secrets, and everything else from the
// environment: the configuration is read through it. A secret that was
// given as NAME_FILE is handed over under that name, so the config's
// _FILE handling reads it as before.
func (s Secrets) Lookup(key string) (string, bool) {
	if v, ok := s[key]; ok {
		return v, true
	}
	if strings.HasSuffix(key, "_FILE") && isSecretVar(key) {
		return "", false
	}
	return os.LookupEnv(key)
}
