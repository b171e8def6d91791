// pyrunner bench's Pyodide harness: one warm Pyodide, fed Code-node tasks
// as n8n 1.x ran them in-process. Requests are JSON lines on stdin, replies
// JSON lines on stdout, in order:
//   {"op":"prepare","code":C,"items":[...]}  load the packages C imports, keep the items
//   {"op":"run","want":bool}               run C on the kept items once
// A run converts the items to Python (toPy), runs C in fresh globals
// wrapped in an async function (so that `return` works, as in n8n 1.x),
// converts the result back (toJs) and reports the time that took, measured
// here with performance.now(): nothing of the pipe is counted.
'use strict';
const readline = require('readline');
const { loadPyodide } = require(process.argv[2]);

function reply(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

function wrap(code) {
  return 'async def __main():\n' + code.split('\n').map((l) => '    ' + l).join('\n') + '\n__result = await __main()\n';
}

(async () => {
  const started = performance.now();
  const pyodide = await loadPyodide({ stdout: () => {}, stderr: () => {} });
  reply({ ok: true, version: pyodide.version, python: pyodide.runPython('import sys; sys.version.split()[0]'),
    load_ms: performance.now() - started });
  let code = '', items = [];
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  // Strictly one request at a time, as Pyodide runs one thing at a time.
  let chain = Promise.resolve();
  rl.on('line', (line) => { chain = chain.then(() => handle(JSON.parse(line))); });
  rl.on('close', () => { chain.then(() => process.exit(0)); });

  async function handle(req) {
    try {
      if (req.op === 'prepare') {
        code = wrap(req.code);
        items = req.items;
        // loadPackagesFromImports does not throw when a package cannot be
        // fetched: importing is the only honest test.
        const loadErrors = [];
        await pyodide.loadPackagesFromImports(req.code, { messageCallback: () => {}, errorCallback: (m) => loadErrors.push(m) });
        for (const pkg of req.packages || []) {
          try {
            pyodide.runPython('import ' + pkg);
          } catch (e) {
            // Pyodide's messages come in pieces: "…while loading numpy:", then "fetch failed".
            const failed = [...loadErrors.join('\n').matchAll(/while loading ([\w.-]+):\s*(.*)/g)].map((m) => m[1] + ': ' + m[2]);
            const lines = String(e.message || e).trim().split('\n');
            const last = lines.filter((l) => /Error\b/.test(l)).pop() || lines.pop();
            reply({ ok: false, error: last + (failed.length ? ' (downloading ' + failed.join(', ') + ')' : '') });
            return;
          }
        }
        reply({ ok: true });
        return;
      }
      const t0 = performance.now();
      const globals = pyodide.toPy({});
      const pyItems = pyodide.toPy(items);
      globals.set('_items', pyItems);
      await pyodide.runPythonAsync(code, { globals });
      const res = globals.get('__result');
      const result = res && res.toJs ? res.toJs({ dict_converter: Object.fromEntries, create_proxies: false }) : res;
      const ms = performance.now() - t0;
      if (res && res.destroy) res.destroy();
      pyItems.destroy();
      globals.destroy();
      reply(req.want ? { ok: true, ms, result } : { ok: true, ms });
    } catch (e) {
      reply({ ok: false, error: String(e && e.message ? e.message : e).slice(-2000) });
    }
  }
})().catch((e) => { reply({ ok: false, error: String(e) }); process.exit(1); });
