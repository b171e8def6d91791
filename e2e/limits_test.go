package e2e

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/excerpt"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

var wildcard = map[string]string{"N8N_RUNNERS_STDLIB_ALLOW": "*", "N8N_RUNNERS_EXTERNAL_ALLOW": "*", "N8N_RUNNERS_BUILTINS_DENY": ""}

func withEnv(base map[string]string, extra map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func TestCPUTimeLimit(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	// A second of CPU can take many seconds on a busy machine: the task
	// timeout is far beyond it.
	startRegistered(t, b, map[string]string{"N8N_PYTHON_MAX_CPU_TIME": "1", "N8N_RUNNERS_TASK_TIMEOUT": "50"})
	out := run(t, b, allItems("while True:\n    pass", nil))
	if got := compact(t, out.Error); got != `{"message":"Task exceeded the CPU time limit of 1 second (N8N_PYTHON_MAX_CPU_TIME)","description":""}` {
		t.Fatalf("error %s", got)
	}
}

// hunter looks at every other process for a few seconds: may it signal
// one, read its environ or its memory? It reports the pids it reached.
const hunter = `
import os, time
me, reached, seen = os.getpid(), [], set()
deadline = time.time() + 2
while time.time() < deadline and not reached:
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            if open('/proc/%d/comm' % pid).read().strip() != 'python3':
                continue
        except OSError:
            continue
        seen.add(pid)
        for attempt in ('signal', 'environ', 'mem'):
            try:
                if attempt == 'signal':
                    os.kill(pid, 0)
                else:
                    open('/proc/%d/%s' % (pid, attempt), 'rb').read(1)
                reached.append([pid, attempt])
            except OSError:
                pass
    time.sleep(0.05)
return [{'json': {'reached': reached, 'seen': len(seen)}}]
`

// TestTasksCannotReachEachOther runs two tasks at once with every module
// allowed: neither may signal, or read the environment or memory of, the
// other, the zygote or any Python process but itself.
func TestTasksCannotReachEachOther(t *testing.T) {
	for _, name := range []string{"own uids", "shared uid"} {
		t.Run(name, func(t *testing.T) {
			env := wildcard
			if name == "shared uid" {
				if os.Geteuid() != 0 {
					t.Skip("tasks share pyrunner's user anyway when it is not root")
				}
				// A user no other test run beside this one has processes as.
				env = withEnv(wildcard, map[string]string{"N8N_PYTHON_TASK_UID": strconv.Itoa(pooltest.UIDBlock(t, 1))})
			}
			b := startBroker(t, fakebroker.Options{})
			startRegistered(t, b, withEnv(env, map[string]string{"N8N_RUNNERS_MAX_CONCURRENCY": "2"}))
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			reqs := []*fakebroker.Request{
				b.Request(allItems(hunter, nil), fakebroker.RequestOptions{}),
				b.Request(allItems(hunter, nil), fakebroker.RequestOptions{}),
			}
			for _, req := range reqs {
				out, err := req.Wait(ctx)
				if err != nil || !out.Done {
					t.Fatalf("%v %s", err, out.Error)
				}
				var res []struct {
					JSON struct {
						Reached [][]any `json:"reached"`
						Seen    int     `json:"seen"`
					} `json:"json"`
				}
				if err := json.Unmarshal(out.Result, &res); err != nil || len(res) != 1 {
					t.Fatalf("result %s", out.Result)
				}
				// At least the zygote and the other task were there to try.
				if r := res[0].JSON; len(r.Reached) > 0 || r.Seen < 2 {
					t.Errorf("reached %v of %d other Python processes", r.Reached, r.Seen)
				}
			}
		})
	}
}

// TestAnalysisIsOffTheBrokerPath: a 6 MB snippet that is slow to analyse
// runs in its own process, bounded by its limits; meanwhile the runner
// serves another task and answers the broker's pings.
//
// "Meanwhile" is checked by order, not by a clock: once the runner has the
// snippet, a ping is answered and a quick task served before the analysis
// ends (seconds against milliseconds). The broker's heartbeat is n8n's
// (30 s) and takes no part: with a 1 s one, the runner was dropped for a
// pong the 6 MB frame itself held up (no pong can pass it, in n8n as here),
// which takes seconds on a loaded machine, the fake broker's recording of
// the frame included.
func TestAnalysisIsOffTheBrokerPath(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, map[string]string{"N8N_RUNNERS_MAX_CONCURRENCY": "2", "N8N_RUNNERS_TASK_TIMEOUT": "30"})
	huge := "x = " + strings.Repeat("'a' + ", 1_000_000) + "'a'\nreturn [{'json': {'n': len(x)}}]"
	if len(huge) < 6_000_000 {
		t.Fatalf("snippet is only %d bytes", len(huge))
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	slow := b.Request(allItems(huge, nil), fakebroker.RequestOptions{})
	p.waitRunning(slow)
	if err := b.Ping(ctx, b.Runners()[0]); err != nil {
		t.Fatalf("no pong while the snippet is analysed: %v", err)
	}
	pong := time.Now()
	quick := run(t, b, allItems("return [{'json': {'quick': True}}]", nil))
	out, err := slow.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !quick.Done || compact(t, quick.Result) != `[{"json":{"quick":true}}]` {
		t.Fatalf("the quick task: %s %s", quick.Result, quick.Error)
	}
	if out.Done || !strings.Contains(string(out.Error), "recursion") {
		t.Fatalf("the 6 MB snippet: done=%v %s %s", out.Done, excerpt.Of(string(out.Result)), excerpt.Of(string(out.Error)))
	}
	t.Logf("6 MB snippet: %s %s after its settings were sent; the pong came after %s, and the quick task took %s",
		out.Error, out.Completed.Sub(out.SettingsSent), pong.Sub(out.SettingsSent), quick.Completed.Sub(quick.SettingsSent))
	if !pong.Before(out.Completed) {
		t.Fatalf("the pong came %s after the analysis ended: the runner did not answer during it", pong.Sub(out.Completed))
	}
	if !quick.Completed.Before(out.Completed) {
		t.Fatalf("the quick task completed %s after the 6 MB snippet: it waited for the analysis", quick.Completed.Sub(out.Completed))
	}
	for _, f := range b.Transcript() {
		if f.Dir == fakebroker.DirWSClose {
			t.Fatalf("connection closed: %s", f.Msg)
		}
	}
}

// TestTaskDirectoriesAreRemoved: every task's private directory is gone
// once it is done (processes waiting ready have theirs already).
func TestTaskDirectoriesAreRemoved(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, wildcard)
	m := regexp.MustCompile(`tasks=(\S+)`).FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no tasks directory in the log:\n%s", excerpt.Of(p.out.String()))
	}
	var used []string
	for range 5 {
		out := run(t, b, allItems("import os\nos.makedirs('a/b')\nopen('a/b/f', 'w').write('x' * 1000)\nreturn [{'json': {'cwd': os.getcwd()}}]", nil))
		var res []struct {
			JSON struct{ Cwd string } `json:"json"`
		}
		if err := json.Unmarshal(out.Result, &res); err != nil || !strings.HasPrefix(res[0].JSON.Cwd, m[1]+"/") {
			t.Fatalf("task cwd: %s %s", out.Result, out.Error)
		}
		used = append(used, res[0].JSON.Cwd)
	}
	for _, dir := range used {
		deadline := time.Now().Add(patience)
		for {
			if _, err := os.Stat(dir); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task directory %s left behind", dir)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
