"""The runner configuration a task process needs, as sent by Go in the "config" message."""

from dataclasses import dataclass, field, replace

# The 22 names n8n's runner removes from builtins by default (docs/sandbox.md §4.3).
DEFAULT_BUILTINS_DENY = (
    "eval,exec,compile,open,input,breakpoint,getattr,object,type,vars,setattr,delattr,"
    "hasattr,dir,memoryview,__build_class__,globals,locals,license,help,credits,copyright"
).split(",")


@dataclass(frozen=True)
class Config:
    stdlib_allow: tuple = ()
    external_allow: tuple = ()
    builtins_deny: tuple = tuple(DEFAULT_BUILTINS_DENY)
    block_env_access: bool = True
    allow_transitive_imports: bool = False
    # print() calls kept per task; further calls are counted, not kept (docs/code-node.md §9.2).
    max_prints: int = 100
    # Characters of print() text kept per task (N8N_PYTHON_MAX_OUTPUT_KB).
    max_output_chars: int = 1 << 20
    # Largest encoded reply a task may send, bytes; 0: no limit. The Go side decides it (the
    # tighter of N8N_PYTHON_MAX_RESULT_MB and N8N_RUNNERS_MAX_PAYLOAD) and names the setting.
    max_result_bytes: int = 0
    max_result_setting: str = "N8N_PYTHON_MAX_RESULT_MB"
    # Per-task limits; 0 leaves one alone.
    memory_mb: int = 0
    cpu_seconds: int = 0
    max_processes: int = 0
    # N8N_PYTHON_NETWORK_ACCESS.
    network: bool = True
    # Where each task process gets its private working directory (<tasks_dir>/<pid>); "" for none.
    tasks_dir: str = ""
    # Paths tasks may read besides the interpreter's and the system's.
    readable_paths: tuple = ()
    # Modules the zygote imports once so that no task pays for them.
    preload: tuple = ()
    # N8N_PYTHON_POOL_IMMORTAL_OBJECTS: the zygote marks its objects immortal where the
    # interpreter allows it (immortal.py).
    immortal_objects: bool = False
    # N8N_PYTHON_POOL_INHERIT_CODE_MAPPINGS: task processes inherit the zygote's mappings of the
    # interpreter's code (codemaps.py).
    inherit_code_mappings: bool = False
    # The user and group tasks run as; -1 keeps pyrunner's own (it is not root). With
    # uid_per_task (decided by the Go side), each live task process gets its own uid and gid
    # from task_uid .. task_uid+task_uid_count-1.
    task_uid: int = -1
    task_gid: int = -1
    task_uid_count: int = 1
    uid_per_task: bool = False
    # Landlock ABI to use; -1 asks the kernel, 0 disables.
    landlock_abi: int = -1
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_message(cls, msg: dict) -> "Config":
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {}
        for key in known:
            if key in msg:
                value = msg[key]
                if value is None and isinstance(cls.__dataclass_fields__[key].default, tuple):
                    value = ()  # Go sends a nil list as null: it means empty, not "default"
                kwargs[key] = tuple(value) if isinstance(value, list) else value
        extra = {k: v for k, v in msg.items() if k not in known and k != "op"}
        return cls(extra=extra, **kwargs)

    def with_landlock_abi(self, abi: int) -> "Config":
        return replace(self, landlock_abi=abi)
