# pyrunner bench's in-process CPython harness: the floor of a scenario, the
# same code run inside one plain Python process with no runner, no sandbox
# and no transport. It speaks the Pyodide harness's protocol (JSON lines on
# stdin and stdout, a greeting first):
#   {"op":"prepare","code":C,"items":[...],"packages":[...]}  import them, keep the items as JSON
#   {"op":"run","want":bool}  run C once
# A run decodes the items (json.loads, as a runner must), runs C in fresh
# globals wrapped in a function (so that `return` works), encodes the
# result (json.dumps) and reports the time that took (perf_counter).
import importlib
import json
import sys
import time

started = time.perf_counter()


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


reply({"ok": True, "version": sys.version.split()[0], "python": sys.version.split()[0], "load_ms": 0.0})
code = None
items = "[]"
for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["op"] == "prepare":
            for pkg in req.get("packages") or []:
                importlib.import_module(pkg)
            source = "def __main():\n" + "".join("    " + l + "\n" for l in req["code"].split("\n"))
            code = compile(source, "<code>", "exec")
            items = json.dumps(req["items"])
            reply({"ok": True})
            continue
        t0 = time.perf_counter()
        scope = {"_items": json.loads(items)}
        exec(code, scope)
        result = json.dumps(scope["__main"]())
        ms = (time.perf_counter() - t0) * 1000
        if req.get("want"):
            reply({"ok": True, "ms": ms, "result": json.loads(result)})
        else:
            reply({"ok": True, "ms": ms})
    except Exception as e:  # the bench reports it as the task's failure
        reply({"ok": False, "error": "%s: %s" % (type(e).__name__, e)})
