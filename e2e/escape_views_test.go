package e2e

// Escape attempts through what allowed modules hand out: private attributes,
// modules behind modules, helpers that take attribute names at run time, and
// every way to a formatter. TestEscapeCorpus runs them with the others, in
// every mode; the "extended" mode adds the modules that give code more
// (importlib, gc, pickle, inspect, linecache, threading), where the README's
// Security section says what each gives and the process boundary must hold.

// typicalStdlib is the "typical" mode's allowlist: what a production setup allows.
const typicalStdlib = "json,re,datetime,math,collections,itertools,functools,base64,hashlib,random,string,time,traceback,operator"

func init() {
	escapeModes["extended"] = map[string]string{"N8N_RUNNERS_STDLIB_ALLOW": typicalStdlib + ",importlib,gc,pickle,inspect,linecache,threading"}
	escapes = append(escapes, viewEscapes...)
}

// refused: stopped by the Python-level checks wherever they run.
var refused = map[string]string{"default": violation, "typical": violation, "extended": violation, "wildcard": ""}

// onlyIf returns refused with mode's expectation replaced.
func onlyIf(mode, want string) map[string]string {
	m := map[string]string{}
	for k, v := range refused {
		m[k] = v
	}
	m[mode] = want
	return m
}

const templateClass = "u = chr(95) * 2\nt = '{0.' + u + 'class' + u + '}'\n"

var viewEscapes = []escape{
	// Private attributes, in the code and at run time.
	{"random's private os", "import random\nreturn str(random._os)", onlyIf("wildcard", "D:module 'os'")},
	{"private name built at run time", "import random, operator\nreturn str(operator.attrgetter('_' + 'os')(random))",
		onlyIf("wildcard", "D:module 'os'")},
	{"collections' sys at run time", "import collections, operator\nb = operator.attrgetter('_' + 'sys.modules')(collections)['builtins']\nreturn b.open('{{SECRET_FILE}}').read()",
		onlyIf("wildcard", "E:Permission denied")},
	{"private name in a template", "import random\nreturn ('{0.' + chr(95) + 'os.environ}').format(random)",
		map[string]string{"default": violation, "typical": "E:String pattern accessing '_os'", "extended": "E:String pattern accessing '_os'", "wildcard": "D:environ"}},
	{"mro gives object back", "o = int.mro()[-1]\nreturn str(o)", onlyIf("wildcard", "D:<class 'object'>")},
	{"the hardened callable's slot", "return str(type(print)._impl)", onlyIf("wildcard", "D:_impl")},
	// Modules behind allowed modules.
	{"enum and sys behind re", "import re\nreturn str(re.enum.sys.modules.keys())[:40]",
		map[string]string{"default": violation, "typical": "E:Access to module 'enum' through 're.enum' is disallowed", "extended": "E:Access to module 'enum' through 're.enum'", "wildcard": "D:"}},
	{"linecache behind traceback", "import traceback\nreturn traceback.linecache.getline('{{SECRET_FILE}}', 1)",
		map[string]string{"default": violation, "typical": "E:Access to module 'linecache' through 'traceback.linecache'", "extended": `D:""`, "wildcard": `D:""`}},
	{"traceback reads any file", "import traceback\nreturn [len(s.splitlines()) for s in traceback.format_list([('/etc/passwd', 1, 'x', None)])]",
		map[string]string{"default": violation, "typical": "D:[1]", "extended": "D:[1]", "wildcard": "D:[2]"}},
	{"frames through traceback", "import traceback\nreturn len(list(traceback.walk_stack(None)))",
		map[string]string{"default": violation, "typical": "E:Access to 'traceback.walk_stack' is disallowed unless module 'sys' is allowed", "extended": "E:unless module 'sys' is allowed", "wildcard": "D:"}},
	{"trace functions through threading", "import threading\nthreading.settrace(print)\nreturn 1",
		map[string]string{"default": violation, "typical": violation, "extended": "E:Access to 'threading.settrace'", "wildcard": "D:1"}},
	// Helpers that take attribute names at run time.
	{"update_wrapper merges a module's globals", "import functools, random\nu = '_' * 2\ndef h():\n    pass\np = functools.partial(len)\nfunctools.update_wrapper(p, h, assigned=[u + 'globals' + u], updated=[])\nfunctools.update_wrapper(p, random.shuffle, assigned=[], updated=[u + 'globals' + u])\nreturn _os.open('{{SECRET_FILE}}', 0)",
		map[string]string{"default": violation, "typical": "E:Access to attribute '__globals__' is disallowed", "extended": "E:Access to attribute '__globals__'", "wildcard": "E:Permission denied"}},
	{"annotations evaluated by singledispatch", "import functools\n@functools.singledispatch\ndef f(x):\n    return 0\ndef g(x: '[c.__name__ for c in ().__class__.__base__.__subclasses__()]'):\n    return 1\nf.register(g)\nreturn 1",
		onlyIf("wildcard", "E:Invalid annotation")},
	// Every way to a formatter.
	{"match binds str.format", templateClass + "match t:\n    case str(format=f):\n        return f(1)", onlyIf("wildcard", "D:<class 'int'>")},
	{"Formatter's private method", "import string\nreturn string.Formatter()._vformat('{0}', [1], {}, set(), 2)[0]", onlyIf("wildcard", `D:"1"`)},
	{"Formatter with its own parse", templateClass + "import string\nf = string.Formatter()\nf.parse = lambda s: [('', '0.' + u + 'class' + u, '', None)] if s else []\nreturn f.format('{0}', 1)",
		map[string]string{"default": violation, "typical": "E:String pattern accessing '__class__'", "extended": "E:String pattern accessing '__class__'", "wildcard": "D:<class 'int'>"}},
	{"methodcaller formats", templateClass + "import operator\nreturn operator.methodcaller('format', 1)(t)",
		map[string]string{"default": violation, "typical": "E:String pattern accessing '__class__'", "extended": "E:String pattern accessing '__class__'", "wildcard": "D:<class 'int'>"}},
	// What the extended modules give: the process boundary holds there.
	{"pickle reaches os through random", "import pickle\nos = pickle.loads(b'crandom\\n_os\\n.')\nreturn os.open('{{SECRET_FILE}}', os.O_RDONLY)",
		map[string]string{"default": violation, "typical": violation, "extended": "E:Permission denied", "wildcard": "E:Permission denied"}},
	{"gc reaches a module's globals", "import gc, random\nfn = [r for r in gc.get_referents(random.choice) if callable(r)][0]\ng = [r for r in gc.get_referents(fn) if isinstance(r, dict) and 'Random' in r][0]\nreturn g['_os'].open('{{SECRET_FILE}}', 0)",
		map[string]string{"default": violation, "typical": violation, "extended": "E:Permission denied", "wildcard": "E:Permission denied"}},
	{"importlib runs os from its source", "import importlib.util as u\ns = u.find_spec('os')\nm = u.module_from_spec(s)\ns.loader.exec_module(m)\nreturn m.listdir('/root')",
		map[string]string{"default": violation, "typical": violation, "extended": "E:Permission denied", "wildcard": "E:Permission denied"}},
	// Ordinary code keeps working with the modules it is allowed.
	{"a typical snippet still works", "import re, json, hashlib, base64, random, collections, datetime, operator\nd = datetime.datetime.strptime('2024-03-05', '%Y-%m-%d')\nP = collections.namedtuple('P', 'a b')\nrandom.seed(1)\nreturn [{'json': {'b': base64.b64encode(b'hi').decode(), 'd': d.strftime('%d.%m'), 'g': operator.attrgetter('a')(P(5, 6)), 'h': hashlib.sha256(b'x').hexdigest()[:6], 'n': len(random.sample(range(9), 3)), 'p': P(1, 2)._replace(b=3)._asdict(), 'r': re.sub('[0-9]+', '#', 'a1b22')}}]",
		map[string]string{"default": violation, "typical": `D:{"b":"aGk=","d":"05.03","g":5,"h":"2d7116","n":3,"p":{"a":1,"b":3},"r":"a#b#"}`, "extended": `D:"d":"05.03"`, "wildcard": `D:"d":"05.03"`}},
}
