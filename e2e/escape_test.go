package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/excerpt"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// An escape attempt and what must come of it under each allowlist setting.
// Whatever the expectation, every attempt must end in exactly one
// taskdone or taskerror, disclose no secret, and leave the runner serving.
type escape struct {
	name string
	// code may use {{SECRET}}, {{SECRET_FILE}}, {{RUNNER_PID}}, {{BROKER_PORT}},
	// and {{MARKER}}, a number that names what the attempt leaves running.
	code string
	// want, by mode ("default", "typical", "extended", "wildcard", or "*" for all):
	// "E:text" a taskerror whose JSON contains text, "D:text" a taskdone
	// whose result contains text, "" either.
	want map[string]string
}

// The allowlist settings every attempt runs under.
var escapeModes = map[string]map[string]string{
	"default":  {"N8N_RUNNERS_STDLIB_ALLOW": ""},
	"typical":  {"N8N_RUNNERS_STDLIB_ALLOW": typicalStdlib},
	"wildcard": {"N8N_RUNNERS_STDLIB_ALLOW": "*", "N8N_RUNNERS_EXTERNAL_ALLOW": "*", "N8N_RUNNERS_BUILTINS_DENY": ""},
}

// The wildcard attempts run once more with every task as one user, the
// way a non-root pyrunner's tasks share its user: then the subreaper, not
// kill-by-uid, removes what tasks leave behind, and RLIMIT_NPROC counts
// from the user's processes. The user is one no other test run on the
// machine uses (pooltest.UIDBlock), not nobody: RLIMIT_NPROC counts every
// process of the uid, and a fork bomb in a second `make test` beside this
// one would leave these tasks no process to fork.

const violation = "E:Security violation"

// pyLevel: stopped by the Python-level sandbox, which n8n skips entirely
// when both allowlists are "*"; there only the process boundary holds, and
// the secret checks say whether it did.
var pyLevel = map[string]string{"default": violation, "typical": violation, "wildcard": ""}

var escapes = []escape{
	// Introspection chains.
	{"subclasses via class", "return [str(c) for c in ().__class__.__bases__[0].__subclasses__()]", pyLevel},
	{"subclasses via mro", "return [str(c) for c in [].__class__.__mro__[-1].__subclasses__()]", pyLevel},
	{"function globals", "f = lambda: 0\nreturn [{'json': {'g': str(f.__globals__)}}]", pyLevel},
	{"print's self", "return [{'json': {'s': str(print.__self__)}}]", pyLevel},
	{"print's call globals", "return [{'json': {'g': str(print.__call__.__globals__)}}]", pyLevel},
	{"builtins subscript import", "os = __builtins__['__import__']('os')\nreturn [{'json': {'e': dict(os.environ)}}]", pyLevel},
	{"dynamic __import__", "m = __import__('o' + 's')\nreturn [{'json': {'e': dict(m.environ)}}]", pyLevel},
	{"literal __import__", "m = __import__('os')\nreturn [{'json': {'e': dict(m.environ)}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "D:{}"}},
	{"class with a metaclass", "class M(type):\n    pass\nclass C(metaclass=M):\n    pass\nreturn [{'json': {'c': str(C)}}]", map[string]string{"default": "E:__build_class__", "typical": "E:__build_class__", "wildcard": "D:C"}},
	{"getattr on print", "return [{'json': {'g': str(getattr(print, '__glob' + 'als__'))}}]", pyLevel},
	{"spec loader", "return [{'json': {'l': str(__spec__.loader)}}]", pyLevel},
	{"name-mangled attribute", "class A: pass\nreturn [{'json': {'x': str(A()._A__secret)}}]", pyLevel},
	{"globals() call", "return [{'json': {'g': str(globals())}}]", map[string]string{"default": "E:globals", "typical": "E:globals", "wildcard": "D:"}},
	{"vars of a module", "import json\nreturn [{'json': {'v': str(vars(json))[:50]}}]", map[string]string{"default": violation, "typical": "E:vars", "wildcard": "D:"}},
	// Format-string tricks.
	{"format reaches class", "return [{'json': {'s': '{0.__class__.__base__.__subclasses__}'.format(1)}}]", pyLevel},
	{"format reaches builtins", "return [{'json': {'s': '{.__builtins__[__import__]}'.format(print)}}]", pyLevel},
	{"format template built at run time", "t = '{0.' + chr(95) * 2 + 'class' + chr(95) * 2 + '}'\nreturn [{'json': {'s': t.format(1)}}]", pyLevel},
	{"Formatter vformat", "import string\nreturn [{'json': {'s': string.Formatter().vformat('{0.__class__}', [1], {})}}]", pyLevel},
	{"bound format taken as a value", "f = '{0.__class__}'.format\nreturn [{'json': {'s': f(1)}}]", pyLevel},
	{"f-string attribute chain", "x = 1\nreturn [{'json': {'s': f'{x.__class__.__base__}'}}]", pyLevel},
	// Frames and tracebacks.
	{"generator frame walk", "def g():\n    yield 1\nit = g()\nreturn [{'json': {'f': str(it.gi_frame.f_back)}}]", pyLevel},
	{"traceback frame", "try:\n    1/0\nexcept Exception as e:\n    return [{'json': {'f': str(e.__traceback__.tb_frame.f_globals)}}]", pyLevel},
	{"sys._getframe", "import sys\nreturn [{'json': {'f': str(sys._getframe(0).f_back)}}]", pyLevel},
	{"inspect stack", "import inspect\nreturn [{'json': {'n': len(inspect.stack())}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "D:n"}},
	// Object scans: the secrets are in no Python process at all.
	{"gc scan for the token", "import gc\nhits = [1 for o in gc.get_objects() if isinstance(o, dict) and any(v == '{{SECRET}}' for v in o.values() if isinstance(v, str))]\nreturn [{'json': {'hits': len(hits)}}]",
		map[string]string{"default": violation, "typical": violation, "wildcard": `D:"hits":0`}},
	{"gc scan for runner state", "import gc\nreturn [{'json': {'n': sum(1 for o in gc.get_objects() if isinstance(o, dict) and 'task_uid' in o)}}]",
		map[string]string{"default": violation, "typical": violation}},
	{"pickle reduce", "import pickle\nclass E:\n    def __reduce__(self):\n        return (print, ('x',))\nreturn [{'json': {'p': len(pickle.dumps(E()))}}]", pyLevel},
	{"operator attrgetter", "import operator\nreturn [{'json': {'g': str(operator.attrgetter('__call__.__globals__')(print))}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "E:"}},
	{"codecs keeps os", "import codecs\nreturn [{'json': {'e': dict(codecs.os.environ) if hasattr(codecs, 'os') else {}}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "D:"}},
	// Allowed modules keep references to sys and os: n8n's checks cannot see
	// that; pyrunner's module views refuse them (escape_views_test.go), and with
	// both allowlists "*" the process boundary holds.
	{"re and enum internals", "import re\nreturn [{'json': {'e': str(re.enum.sys.modules.keys())[:40]}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "D:"}},
	{"random keeps os", "import random\nrc = random._os.system('cat /proc/{{RUNNER_PID}}/environ > leak')\nreturn [{'json': {'e': dict(random._os.environ), 'leak': open('leak').read() if rc == 0 else ''}}]",
		map[string]string{"default": violation, "typical": violation, "wildcard": `D:"e":{},"leak":""`}},
	{"collections keeps sys", "import collections\nb = collections._sys.modules['builtins']\nreturn [{'json': {'s': b.open('{{SECRET_FILE}}').read()}}]",
		map[string]string{"default": violation, "typical": violation, "wildcard": "E:Permission denied"}},
	{"int's mro gives object back", "o = int.mro()[-1]\nreturn [{'json': {'n': len(o.__subclasses__())}}]", pyLevel},
	// ctypes, subprocess, os.system.
	{"ctypes system", "import ctypes\nreturn [{'json': {'rc': ctypes.CDLL(None).system(b'cat /proc/*/environ > /dev/null')}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "D:rc"}},
	{"ctypes ptrace parent", "import ctypes, os\nr = ctypes.CDLL(None, use_errno=True).ptrace(16, os.getppid(), 0, 0)\nreturn [{'json': {'r': r, 'errno': ctypes.get_errno()}}]", map[string]string{"default": violation, "typical": violation, "wildcard": `D:"r":-1`}},
	{"subprocess env", "import subprocess\nreturn [{'json': {'out': subprocess.run(['env'], capture_output=True, text=True).stdout}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "D:out"}},
	{"os.system", "import os\nreturn [{'json': {'rc': os.system('cat /proc/1/environ')}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "D:rc"}},
	{"os.popen", "import os\nreturn [{'json': {'out': os.popen('id').read()}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "D:uid="}},
	// Reading /proc and files.
	{"own environ", "return [{'json': {'e': open('/proc/self/environ').read()}}]", map[string]string{"default": "E:open", "typical": "E:open", "wildcard": ""}},
	{"zygote environ", "import os\nreturn [{'json': {'e': open('/proc/%d/environ' % os.getppid()).read()}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Permission denied"}},
	{"runner environ", "return [{'json': {'e': open('/proc/{{RUNNER_PID}}/environ').read()}}]", map[string]string{"default": "E:open", "typical": "E:open", "wildcard": "E:Permission denied"}},
	{"runner memory", "f = open('/proc/{{RUNNER_PID}}/mem', 'rb')\nreturn [{'json': {'m': str(f.read(16))}}]", map[string]string{"default": "E:open", "typical": "E:open", "wildcard": "E:Permission denied"}},
	{"scan every environ", "import os\nhits = []\nfor p in os.listdir('/proc'):\n    try:\n        if '{{SECRET}}' in open('/proc/%s/environ' % p).read():\n            hits.append(p)\n    except OSError:\n        pass\nreturn [{'json': {'hits': hits}}]",
		map[string]string{"default": violation, "typical": violation, "wildcard": `D:"hits":[]`}},
	{"secret file", "return [{'json': {'s': open('{{SECRET_FILE}}').read()}}]", map[string]string{"default": "E:open", "typical": "E:open", "wildcard": "E:Permission denied"}},
	{"root's home", "import os\nreturn [{'json': {'l': os.listdir('/root')}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Permission denied"}},
	{"list the filesystem root", "import os\nreturn [{'json': {'l': os.listdir('/')}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Permission denied"}},
	{"write outside the workdir", "open('/tmp/pyrunner-escape', 'w').write('x')\nreturn []", map[string]string{"default": "E:open", "typical": "E:open", "wildcard": "E:Permission denied"}},
	{"symlink out of the workdir", "import os\nos.symlink('/root', 'r')\nreturn [{'json': {'l': os.listdir('r')}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Permission denied"}},
	{"private workdir", "import os, tempfile\nopen('mine.txt', 'w').write('x')\nreturn [{'json': {'files': os.listdir('.'), 'tmp': tempfile.gettempdir() == os.getcwd()}}]",
		map[string]string{"default": violation, "typical": violation, "wildcard": `D:"files":["mine.txt"],"tmp":true`}},
	// Signals.
	{"kill the zygote", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nreturn []", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Operation not permitted"}},
	{"kill the runner", "import os, signal\nos.kill({{RUNNER_PID}}, signal.SIGKILL)\nreturn []", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Operation not permitted"}},
	{"kill the zygote's group", "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\nreturn []", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Operation not permitted"}},
	{"kill everything", "import os, signal\nos.kill(-1, signal.SIGKILL)\nreturn [{'json': {'alive': True}}]", map[string]string{"default": violation, "typical": violation}},
	{"pidfd signal", "import os, signal\nfd = os.pidfd_open({{RUNNER_PID}})\nsignal.pidfd_send_signal(fd, signal.SIGKILL)\nreturn []", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Operation not permitted"}},
	// The worker channel.
	{"garbage on the channel", "import os\nos.write(3, b'\\x00\\x00\\x00\\x05hello')\nreturn [1]", map[string]string{"default": violation, "typical": violation, "wildcard": "E:"}},
	{"close the channel", "import os\nos.close(3)\nreturn [1]", map[string]string{"default": violation, "typical": violation, "wildcard": "E:"}},
	{"forged result on the channel", "import os, json\nb = json.dumps({'op': 'result', 'result': ['forged'], 'print_args': []}).encode()\nos.write(3, len(b).to_bytes(4, 'big') + b)\nimport time\ntime.sleep(5)",
		map[string]string{"default": violation, "typical": violation, "wildcard": `D:"forged"`}},
	{"announce a huge reply", "import os, time\nos.write(3, (1 << 30).to_bytes(4, 'big') + b'{')\ntime.sleep(5)",
		map[string]string{"default": violation, "typical": violation, "wildcard": "E:Task result is too large: frame too large: 1073741824 bytes, limit 33619968 (N8N_PYTHON_MAX_RESULT_MB)"}},
	{"invalid UTF-8 on the channel", "import os, time\nb = b'{\"op\":\"result\",\"result\":[\"\\xff\"],\"print_args\":[]}'\nos.write(3, len(b).to_bytes(4, 'big') + b)\ntime.sleep(5)",
		map[string]string{"default": violation, "typical": violation, "wildcard": "E:Task process sent an invalid reply: reply is not valid UTF-8"}},
	{"a flood of print entries on the channel", "import os, json, time\nb = json.dumps({'op': 'result', 'result': [], 'print_args': [['x']] * 100000}).encode()\nos.write(3, len(b).to_bytes(4, 'big') + b)\ntime.sleep(5)",
		map[string]string{"default": violation, "typical": violation, "wildcard": "E:Task process sent an invalid reply: reply has 100000 print entries, more than 101"}},
	// Resources.
	{"fork bomb", "import os\nwhile True:\n    os.fork()", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Resource temporarily unavailable"}},
	{"thread bomb", "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()", map[string]string{"default": violation, "typical": violation, "wildcard": "E:can't start new thread"}},
	{"detached child survives", "import os\nif os.fork() == 0:\n    os.setsid()\n    os.execv('/bin/sleep', ['sleep', '{{MARKER}}'])\nreturn [{'json': {'forked': True}}]", map[string]string{"default": violation, "typical": violation, "wildcard": "D:forked"}},
	{"memory bomb", "x = bytearray(2 * 1024 ** 3)\nreturn []", map[string]string{"*": "E:Task exceeded the memory limit of 256 MB"}},
	{"growing memory", "l = []\nwhile True:\n    l.append(' ' * 10 ** 7)", map[string]string{"*": "E:Task exceeded the memory limit of 256 MB"}},
	{"gigabyte of prints", "for i in range(10 ** 6):\n    print('x' * 1000)\nreturn [{'json': {'done': True}}]", map[string]string{"*": `D:"done":true`}},
	{"one huge print", "print('x' * 10 ** 9)\nreturn []", map[string]string{"*": "E:Task exceeded the memory limit of 256 MB"}},
	{"500 MB result", "return [{'json': {'s': 'x' * 500_000_000}}]", map[string]string{"*": "E:Task exceeded the memory limit of 256 MB"}},
	{"64 MB result", "return [{'json': {'s': 'x' * 64_000_000}}]", map[string]string{"*": "E:exceeds the limit of 32 MB (N8N_PYTHON_MAX_RESULT_MB)"}},
	{"deep recursion", "def f(n):\n    return f(n + 1)\nf(0)", map[string]string{"*": "E:maximum recursion depth exceeded"}},
	{"deeply nested result", "x = []\nfor i in range(100000):\n    x = [x]\nreturn x", map[string]string{"*": "E:"}},
	{"infinite loop", "while True:\n    pass", map[string]string{"*": "E:Task execution timed out after 3 seconds"}},
	{"thread left running", "import threading\ndef spin():\n    while True:\n        pass\nthreading.Thread(target=spin).start()\nreturn [{'json': {'returned': True}}]", map[string]string{"default": violation, "typical": violation, "wildcard": `D:"returned":true`}},
	{"sleeping thread keeps the result", "import threading, time\nthreading.Thread(target=time.sleep, args=(30,)).start()\nreturn [{'json': {'ok': 1}}]", map[string]string{"default": violation, "typical": violation, "wildcard": `D:"ok":1`}},
	{"alarm signal", "import signal, time\nsignal.alarm(1)\ntime.sleep(5)", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Task subprocess exited with code -14"}},
	{"exit before the result", "import os\nos._exit(0)", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Process completed but returned no result"}},
	{"raise the limits back", "import resource\nresource.setrlimit(resource.RLIMIT_NPROC, (100000, 100000))\nreturn []", map[string]string{"default": violation, "typical": violation, "wildcard": "E:"}},
	{"become root", "import os\nos.setuid(0)\nreturn []", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Operation not permitted"}},
	{"environment is empty", "import os\nreturn [{'json': {'env': dict(os.environ)}}]", map[string]string{"default": violation, "typical": violation, "wildcard": `D:"env":{}`}},
	{"network to the broker", "import socket\ns = socket.create_connection(('127.0.0.1', {{BROKER_PORT}}), timeout=2)\nreturn []", map[string]string{"default": violation, "typical": violation, "wildcard": "E:Network access is disabled"}},
	{"harmless code still works", "import json, re, math\nreturn [{'json': {'v': json.dumps({'a': re.sub('x', 'y', 'xx'), 'p': round(math.pi, 2)})}}]",
		map[string]string{"default": violation, "typical": `D:{\"a\": \"yy\", \"p\": 3.14}`, "wildcard": `D:{\"a\": \"yy\", \"p\": 3.14}`}},
}

// The task timeouts of the corpus's two runners. An attempt that only the
// timeout ends ("infinite loop") runs where it is short. Every other
// attempt runs where no loaded machine reaches it: a limit must stop those
// (a 64 MB result, a list growing to the memory limit), and on a busy
// 2-core machine that can take longer than 3 s, which is not a timeout
// the attempt should be blamed for.
const (
	shortTaskTimeout = "3000"  // ms: "Task execution timed out after 3 seconds"
	longTaskTimeout  = "30000" // ms
)

// endsByTimeout reports whether the outcome want is the task timeout's.
func endsByTimeout(want string) bool { return strings.HasPrefix(want, "E:Task execution timed out") }

// corpusRunner is one of a mode's two pyrunners and its broker.
type corpusRunner struct {
	b    *fakebroker.Broker
	p    *proc
	port string
}

// TestEscapeCorpus runs every escape attempt under the default, a typical
// and the wildcard allowlists, with the network off and small limits so
// that the bombs are quick.
func TestEscapeCorpus(t *testing.T) {
	if len(escapes) < 50 {
		t.Fatalf("the corpus has %d cases, want at least 50", len(escapes))
	}
	modes := map[string]map[string]string{}
	for mode, env := range escapeModes {
		modes[mode] = env
	}
	if os.Geteuid() == 0 {
		modes["wildcard-shared-uid"] = escapeModes["wildcard"]
	}
	n := 0
	for name, env := range modes {
		mode := strings.TrimSuffix(name, "-shared-uid")
		// What the attempts leave running is named by this run and mode
		// alone: the check that it is gone must not see another's.
		n++
		marker := fmt.Sprintf("777%d%d", os.Getpid(), n)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			secret := "s3cr3t-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			secretFile := filepath.Join(t.TempDir(), "auth-token")
			if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			runnerEnv := map[string]string{
				"N8N_RUNNERS_AUTH_TOKEN":      unset,
				"N8N_RUNNERS_AUTH_TOKEN_FILE": secretFile,
				"N8N_PYTHON_MAX_MEMORY_MB":    "256",
				"N8N_PYTHON_MAX_RESULT_MB":    "32",
				"N8N_PYTHON_MAX_PROCESSES":    "16",
				"N8N_PYTHON_NETWORK_ACCESS":   "false",
				"N8N_RUNNERS_MAX_CONCURRENCY": "2",
			}
			for k, v := range env {
				runnerEnv[k] = v
			}
			if mode != name {
				runnerEnv["N8N_PYTHON_TASK_UID"] = strconv.Itoa(pooltest.UIDBlock(t, 1))
			}
			runners := map[string]*corpusRunner{}
			for _, timeout := range []string{shortTaskTimeout, longTaskTimeout} {
				b := startBroker(t, fakebroker.Options{AuthToken: secret})
				p := startRunner(t, b, withEnv(runnerEnv, map[string]string{"N8N_PYTHON_MAX_EXECUTION_TIME": timeout}))
				runners[timeout] = &corpusRunner{b: b, p: p, port: b.Addr()[strings.LastIndex(b.Addr(), ":")+1:]}
			}
			for _, r := range runners {
				ctx, cancel := context.WithTimeout(context.Background(), patience)
				err := r.b.WaitRegistered(ctx, 1)
				cancel()
				if err != nil {
					t.Fatalf("runner did not register: %v", err)
				}
			}
			for _, e := range escapes {
				want, ok := e.want[mode]
				if !ok {
					want = e.want["*"]
				}
				r := runners[longTaskTimeout]
				if endsByTimeout(want) {
					r = runners[shortTaskTimeout]
				}
				b := r.b
				code := strings.NewReplacer("{{SECRET}}", secret, "{{SECRET_FILE}}", secretFile,
					"{{RUNNER_PID}}", strconv.Itoa(r.p.cmd.Process.Pid), "{{BROKER_PORT}}", r.port, "{{MARKER}}", marker).Replace(e.code)
				out := run(t, b, allItems(code, nil))
				got := string(out.Result)
				if !out.Done {
					got = string(out.Error)
				}
				if strings.Contains(got, secret) || rpcsContain(out, secret) {
					t.Errorf("%s: the secret leaked: %s", e.name, excerpt.Of(got))
				}
				if err := checkOutcome(out, want); err != nil {
					t.Errorf("%s: %v", e.name, err)
				}
				// The runner is alive and the next task is served normally.
				if next := run(t, b, allItems("return [{'json': {'alive': 1}}]", nil)); !next.Done || string(next.Result) != `[{"json":{"alive":1}}]` {
					t.Fatalf("%s: the next task failed: %s %s", e.name, excerpt.Of(string(next.Result)), excerpt.Of(string(next.Error)))
				}
			}
			for _, r := range runners {
				if _, exited := r.p.exitCode(0); exited {
					t.Fatal("a runner died")
				}
			}
			// Nothing a task started survives it.
			if pids := processesNamed("sleep", marker); len(pids) > 0 {
				t.Errorf("processes started by tasks survived them: %v", pids)
			}
		})
	}
}

func checkOutcome(out fakebroker.Outcome, want string) error {
	switch {
	case want == "":
		if !out.Done && out.Error == nil {
			return fmt.Errorf("no outcome")
		}
	case strings.HasPrefix(want, "E:"):
		if out.Done || !strings.Contains(string(out.Error), want[2:]) {
			return fmt.Errorf("want a taskerror with %q, got done=%v result=%s error=%s", want[2:], out.Done, excerpt.Of(string(out.Result)), excerpt.Of(string(out.Error)))
		}
	case strings.HasPrefix(want, "D:"):
		if !out.Done || !strings.Contains(string(out.Result), want[2:]) {
			return fmt.Errorf("want a taskdone with %q, got done=%v result=%s error=%s", want[2:], out.Done, excerpt.Of(string(out.Result)), excerpt.Of(string(out.Error)))
		}
	}
	return nil
}

func rpcsContain(out fakebroker.Outcome, s string) bool {
	for _, r := range out.RPCs {
		if strings.Contains(string(r.Params), s) {
			return true
		}
	}
	return false
}

// processesNamed lists the pids whose command line is exactly args.
func processesNamed(args ...string) []int {
	want := strings.Join(args, "\x00") + "\x00"
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(b) == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

var _ = json.Valid
