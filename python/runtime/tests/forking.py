"""Running a check in a forked child, for tests of what the zygote does to its own process."""

import os
import traceback


def in_child(check) -> int:
    """Runs check() in a forked child; its exit status: 0 when check returned True. The child
    leaves through os._exit, whatever the check did to its process."""
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            code = 0 if check() else 1
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
