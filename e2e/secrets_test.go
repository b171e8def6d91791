package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
)

// secretHunt is a task that looks for the runner's tokens everywhere a
// process can look without help: its environment, /proc/self, every
// ancestor's environ and cmdline, every process's environ, the runner's
// memory. It reports what it found and how much it could read.
const secretHunt = `
import os
secrets = %s
found, counts = [], {'readable': 0, 'denied': 0}
def look(where, data):
    for s in secrets:
        if s.encode() in data:
            found.append(where)
for k, v in os.environ.items():
    look('os.environ', (k + '=' + v).encode())
def read(path, limit=1 << 20):
    try:
        with open(path, 'rb') as f:
            data = f.read(limit)
        counts['readable'] += 1
        return data
    except OSError:
        counts['denied'] += 1
        return b''
look('/proc/self/environ', read('/proc/self/environ'))
pid, ancestors = os.getpid(), []
while pid > 1:
    stat = read('/proc/%%d/stat' %% pid).decode()
    pid = int(stat.rsplit(')', 1)[1].split()[1]) if stat else 1
    ancestors.append(pid)
    look('/proc/%%d/environ' %% pid, read('/proc/%%d/environ' %% pid))
    look('/proc/%%d/cmdline' %% pid, read('/proc/%%d/cmdline' %% pid))
for entry in os.listdir('/proc'):
    if entry.isdigit():
        look('/proc/%%s/environ' %% entry, read('/proc/%%s/environ' %% entry))
runner = %d
try:
    with open('/proc/%%d/mem' %% runner, 'rb') as f:
        found.append('opened runner memory')
except OSError:
    pass
return [{'json': {'found': found, 'readable': counts['readable'], 'denied': counts['denied'], 'ancestors': ancestors}}]
`

// TestSecretsUnreachableFromTasks: no token can be read by user code, by
// any route. Run as the tasks' default user (nobody when pyrunner is root)
// and, where the kernel has Landlock, as root too: then the Landlock
// domain alone must keep them out.
func TestSecretsUnreachableFromTasks(t *testing.T) {
	users := map[string]string{"default task user": unset}
	if os.Geteuid() == 0 && landlockAvailable() {
		users["root task user, Landlock only"] = "0"
	}
	for name, uid := range users {
		t.Run(name, func(t *testing.T) {
			authToken := "auth-" + strconv.FormatInt(int64(os.Getpid()), 36) + "-Xq7v9"
			b := startBroker(t, fakebroker.Options{AuthToken: authToken})
			grant := b.MintGrant() // never used, but present in the environment
			p := startRegistered(t, b, map[string]string{
				"N8N_RUNNERS_STDLIB_ALLOW":  "*",
				"N8N_RUNNERS_BUILTINS_DENY": "",
				"N8N_RUNNERS_AUTH_TOKEN":    authToken,
				"N8N_RUNNERS_GRANT_TOKEN":   grant,
				"N8N_PYTHON_TASK_UID":       uid,
			})
			// The runner's own initial environment holds neither token.
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{authToken, grant, "N8N_RUNNERS_AUTH_TOKEN", "N8N_RUNNERS_GRANT_TOKEN"} {
				if strings.Contains(string(environ), s) {
					t.Fatalf("runner's /proc/<pid>/environ contains %q", s)
				}
			}
			secrets, _ := json.Marshal([]string{authToken, grant})
			out := run(t, b, allItems(fmt.Sprintf(secretHunt, secrets, p.cmd.Process.Pid), nil))
			if !out.Done {
				t.Fatalf("hunt failed: %s", out.Error)
			}
			var res []struct {
				JSON struct {
					Found     []string `json:"found"`
					Readable  int      `json:"readable"`
					Denied    int      `json:"denied"`
					Ancestors []int    `json:"ancestors"`
				} `json:"json"`
			}
			if err := json.Unmarshal(out.Result, &res); err != nil || len(res) != 1 {
				t.Fatalf("result %s", out.Result)
			}
			r := res[0].JSON
			t.Logf("read %d /proc files, denied %d, ancestors %v", r.Readable, r.Denied, r.Ancestors)
			if len(r.Found) > 0 {
				t.Fatalf("secrets found at %v", r.Found)
			}
			if r.Readable == 0 || len(r.Ancestors) < 2 {
				t.Fatalf("the hunt did not run: %+v", r)
			}
		})
	}
}

func landlockAvailable() bool {
	_, err := os.Stat("/sys/kernel/security/landlock")
	if err == nil {
		return true
	}
	// securityfs is often not mounted; ask the kernel instead.
	return landlockABI() > 0
}
