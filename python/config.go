package python

// Config is what every task process needs to know about the runner's
// settings: the "config" message of the protocol (see config.py, which
// mirrors it; a test holds the two together). Every decision in it is
// taken on the Go side; Python follows it.
type Config struct {
	Op                     string   `json:"op"`
	StdlibAllow            []string `json:"stdlib_allow"`
	ExternalAllow          []string `json:"external_allow"`
	BuiltinsDeny           []string `json:"builtins_deny"`
	BlockEnvAccess         bool     `json:"block_env_access"`
	AllowTransitiveImports bool     `json:"allow_transitive_imports"`
	Preload                []string `json:"preload"`
	// ImmortalObjects: the zygote marks the objects it holds once warm
	// immortal before it forks (Python 3.12 and 3.13; see immortal.py).
	ImmortalObjects bool `json:"immortal_objects"`
	// InheritCodeMappings: the zygote's task processes inherit its
	// mappings of the interpreter's code instead of faulting them in
	// (codemaps.py).
	InheritCodeMappings bool `json:"inherit_code_mappings"`
	// TaskUID and TaskGID are the user tasks run as; -1 keeps pyrunner's.
	// With UIDPerTask (a root pyrunner) each live task process gets a uid
	// and gid of its own from the TaskUIDCount starting at TaskUID; else
	// every task runs as TaskUID.
	TaskUID      int  `json:"task_uid"`
	TaskGID      int  `json:"task_gid"`
	TaskUIDCount int  `json:"task_uid_count"`
	UIDPerTask   bool `json:"uid_per_task"`

	// Per-task limits; 0 leaves one alone.
	MemoryMB       int `json:"memory_mb"`
	CPUSeconds     int `json:"cpu_seconds"`
	MaxProcesses   int `json:"max_processes"`
	MaxOutputChars int `json:"max_output_chars"`
	// MaxPrints is how many print() calls a task's reply carries (n8n's
	// 100); the rest are counted in one truncation entry.
	MaxPrints int `json:"max_prints"`
	// MaxResultBytes bounds an encoded reply, and MaxResultSetting names
	// the setting that sets it, for the error that replaces a larger one.
	MaxResultBytes   int    `json:"max_result_bytes"`
	MaxResultSetting string `json:"max_result_setting"`
	Network          bool   `json:"network"`
	// TasksDir holds each task process's private working directory.
	TasksDir      string   `json:"tasks_dir"`
	ReadablePaths []string `json:"readable_paths"`
	// LandlockABI: -1 asks the kernel, 0 disables Landlock.
	LandlockABI int `json:"landlock_abi"`
}

// Bootstrap is the -c program that puts the runtime directory (argv[1]) on
// sys.path and runs the named entry point: "zygote" or "child".
func Bootstrap(entry string) string {
	return "import sys; sys.path.insert(0, sys.argv[1]); from pyrunner_runtime import " + entry + "; " + entry + ".main()"
}
