"""A Python that has loaded TensorFlow once, forked for each command a test runs.

Over half of the suite's time was Python processes loading TensorFlow, about 4 s each, over a
hundred times. A command started through here, `python tests/warm_python.py <socket> <module>
<args>`, is forked from a server that loaded it once for its pytest-xdist worker, and runs as
`python -m <module> <args>` would: in the caller's folder, with its environment, its stdin,
stdout and stderr; the client passes on the signals it gets and exits as the command did (the
same code, or killed by the same signal; killed, it takes the command with it).

Where a fork could act differently from a fresh Python, the difference is kept out or refused:
- TensorFlow and the packages it brought are hidden from sys.modules until the command imports
  them (`"tensorflow" in sys.modules` is false, as an entry point expects when it chooses
  oneDNN and the log level).
- TensorFlow reads some of its environment once, as it loads. A command that loads it under
  another oneDNN choice or another TF_*/KERAS_* variable fails, naming it, rather
  than run with another's settings: a test runs such a command with fresh=True. On a CPU where
  TensorFlow leaves oneDNN off by itself (our entry points turn it on there), every command
  runs fresh.
- A command whose environment differs in what a Python reads as it starts (PYTHON*, HOME,
  TMPDIR, thread counts) or TensorFlow as it loads (TF_*, KERAS_*; not oneDNN, which an entry
  point may choose later) runs in a fresh Python: the client execs it.
- What TensorFlow prints as it loads went to the server's stderr, not the command's (our entry
  points drop those notices anyway: mnist_hydra/console.py).
- The command's pid is not the client's: a test that needs the run's own pid reads it from the
  run (the fault holds write it), and one that needs more runs fresh.
"""

import array
import json
import os
import signal
import socket
import struct
import sys

# What a Python, numpy or Keras read as they start: a request that differs in any runs fresh.
STARTUP_VARIABLES = ("PYTHON", "LD_", "HOME", "TMPDIR", "TEMP", "TMP", "OMP_", "OPENBLAS_", "MKL_", "MPL")
# What TensorFlow reads as it loads: checked when the command imports it.
TENSORFLOW_VARIABLES = ("TF_", "KERAS_", "CUDA", "XLA_")
ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
# Signals a test may send a command; SIGKILL cannot be passed on: the command sees its client
# go and kills itself.
PASSED_ON = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
HEADER = struct.Struct("!I")


def matching(environment: dict, prefixes: tuple) -> dict:
    return {key: value for key, value in environment.items() if key.startswith(prefixes)}


def as_loaded(environment: dict) -> dict:
    """What a request must share with the server to run in it: what Python read as it started
    and TensorFlow as it loaded (but oneDNN, which an entry point may still choose)."""
    shared = matching(environment, STARTUP_VARIABLES + TENSORFLOW_VARIABLES)
    shared.pop(ONEDNN, None)
    return shared


# --- the client: one per command, a plain Python without imports to speak of ------------------


def client(socket_path: str, module: str, args: list[str]) -> None:
    # Signals ignored as it started (`cmd &` ignores SIGINT), which a fresh Python would keep ignoring.
    ignored = [number for number in PASSED_ON if signal.getsignal(number) == signal.SIG_IGN]
    signals = PassOn(ignored)
    request = {
        "module": module,
        "args": args,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "ignored": ignored,
    }
    request = json.dumps(request).encode()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(socket_path)
        connection.sendmsg(
            [HEADER.pack(len(request))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))]
        )
        connection.sendall(request)
        answer = connection.makefile("r")
        first = answer.readline().split()
    except OSError:
        first = []
    if first[:1] != ["pid"]:  # no server, or it asks for a fresh Python: nothing has run yet
        signals.end_as_fresh()
        os.execv(sys.executable, [sys.executable, "-m", module, *args])
    pid = int(first[1])
    signals.start(pid)
    last = answer.readline().split()
    if last[:1] != ["exit"]:
        sys.exit(f"tests/warm_python.py: the server ended before the command (pid {pid}) did")
    code = int(last[1])
    if code < 0:  # killed by a signal: so is the client
        end_by_signal(-code)
    sys.exit(code)


def end_by_signal(number: int) -> None:
    """End this process as killed by signal `number` (its handler, if it has one, undone first)."""
    if number not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)


class PassOn:
    """The signals the client gets, passed on to its command: from the start, those that come
    before the command's pid is known as soon as it is (a test never races the fork)."""

    def __init__(self, ignored: list[int]):
        self.pid, self.waiting = None, []
        for number in set(PASSED_ON) - set(ignored):
            signal.signal(number, self.handle)

    def handle(self, number, frame) -> None:
        if self.pid is None:
            self.waiting.append(number)
        else:
            pass_on(self.pid, number)

    def start(self, pid: int) -> None:
        self.pid = pid
        for number in self.waiting:
            pass_on(pid, number)

    def end_as_fresh(self) -> None:
        """Before a fresh Python takes over: a signal it would have had at its start ends it now."""
        for number in self.waiting[:1]:
            end_by_signal(number)


def pass_on(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


# --- the server: loads TensorFlow once, forks a command per client ---------------------------


class HiddenModules:
    """A finder first on sys.meta_path: importing a hidden module puts back its package's
    modules, as they were loaded, once TensorFlow's environment is checked."""

    def __init__(self, modules: dict, environment: dict, onednn: bool):
        self.modules, self.environment, self.onednn = modules, environment, onednn

    def check_environment(self, name: str) -> None:
        now = matching(os.environ, TENSORFLOW_VARIABLES)
        wanted = os.environ.get(ONEDNN)
        onednn = self.onednn if wanted is None else wanted.strip().lower() in ("1", "true")
        if onednn != self.onednn:
            differs = f"{ONEDNN}={wanted} (oneDNN {'on' if onednn else 'off'})"
        else:
            keys = (set(now) | set(self.environment)) - {ONEDNN}
            differs = ", ".join(
                f"{key}={now.get(key)}" for key in sorted(keys) if now.get(key) != self.environment.get(key)
            )
        if differs:
            raise ImportError(
                f"tests/warm_python.py: this command imports {name} under {differs}, not as the warm "
                "Python loaded it: run the command with fresh=True"
            )

    def find_spec(self, name, path=None, target=None):
        if name not in self.modules:
            return None
        self.check_environment(name)
        # The package's other modules go back into sys.modules; this one the import system puts
        # there itself, from the spec returned (given one already there, it would load it anew).
        module, package = self.modules.pop(name), name.partition(".")[0]
        for hidden in [hidden for hidden in self.modules if hidden.partition(".")[0] == package]:
            sys.modules.setdefault(hidden, self.modules.pop(hidden))
        return _Restored(name, module).spec


class _Restored:
    """A loader that hands the import system a module the server loaded, as it was."""

    def __init__(self, name: str, module):
        import importlib.util

        self.module, self.original = module, module.__spec__
        self.spec = importlib.util.spec_from_loader(name, self, is_package=hasattr(module, "__path__"))

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        module.__spec__ = self.original


def load_tensorflow_hidden() -> bool:
    """Load Keras and TensorFlow, then hide every module they brought (but the standard
    library's). True if TensorFlow turned oneDNN on by itself."""
    # Loaded in view: what every command imports before TensorFlow, read no environment from.
    import hydra  # noqa: F401
    import numpy  # noqa: F401  (reseeded in each command)

    before, environment = set(sys.modules), matching(os.environ, TENSORFLOW_VARIABLES)
    import keras  # noqa: F401
    from tensorflow.python.util import _pywrap_util_port

    onednn = bool(_pywrap_util_port.IsMklEnabled())
    brought = {
        name: sys.modules.pop(name)
        for name in set(sys.modules) - before
        if name.partition(".")[0] not in sys.stdlib_module_names
    }
    sys.meta_path.insert(0, HiddenModules(brought, environment, onednn))
    return onednn


def receive(connection: socket.socket) -> tuple[dict, list[int]]:
    header, fds, _, _ = socket.recv_fds(connection, HEADER.size, 3)
    (size,) = HEADER.unpack(header)
    body = b""
    while len(body) < size:
        chunk = connection.recv(size - len(body))
        if not chunk:
            raise ConnectionError("the client went")
        body += chunk
    return json.loads(body), fds


def serve(socket_path: str):
    """Answer clients until the worker goes; returns only in a forked command's process."""
    import ctypes
    import select

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the server ends with its worker
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)  # clients wait in the backlog while TensorFlow loads
    listener.listen(64)
    startup = as_loaded(os.environ)
    usable = load_tensorflow_hidden()  # else the entry points' oneDNN choice differs from the loaded one
    commands: dict[int, socket.socket] = {}
    while True:
        for pid in list(commands):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                with commands.pop(pid) as connection:
                    send(connection, f"exit {os.waitstatus_to_exitcode(status)}")
        if not select.select([listener], [], [], 0.05)[0]:
            continue
        connection = listener.accept()[0]
        try:
            request, fds = receive(connection)
        except (OSError, ValueError):
            connection.close()
            continue
        if not usable or len(fds) != 3 or as_loaded(request["env"]) != startup:
            send(connection, "fresh")
            for fd in fds:
                os.close(fd)
            connection.close()
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            listener.close()
            for other in commands.values():
                other.close()
            return connection, request, fds
        for fd in fds:
            os.close(fd)
        commands[pid] = connection


def send(connection: socket.socket, line: str) -> None:
    try:
        connection.sendall(f"{line}\n".encode())
    except OSError:
        pass  # the client went: nobody waits for the answer


def become_command(connection: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked process: take on the client's files, folder, environment and arguments,
    then run the module as `python -m` does, to the end of this Python."""
    import random
    import runpy
    import threading
    import traceback

    import numpy

    for number, fd in enumerate(fds):
        os.dup2(fd, number)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for number in request["ignored"]:
        signal.signal(number, signal.SIG_IGN)
    random.seed()
    numpy.random.seed()
    sys.path[0] = os.getcwd()
    sys.argv = [request["module"], *request["args"]]
    send(connection, f"pid {os.getpid()}")
    threading.Thread(target=die_with_client, args=(connection,), daemon=True).start()
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as leaving:
        code = exit_code(leaving.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT  # as Python ends on an uncaught Ctrl+C: killed by SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    end_as_python_does(code)


def exit_code(code) -> int:
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def end_as_python_does(code: int) -> None:
    """What Python does at its end that a command could see: wait for its threads, run its
    atexit functions, flush stdout and stderr; then end without tearing down the thousands of
    modules TensorFlow loaded (about a second; a fresh Python spends it only if it loaded them)."""
    import atexit
    import threading

    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if code < 0:
        end_by_signal(-code)
    os._exit(code & 0xFF)


def die_with_client(connection: socket.socket) -> None:
    """The client never writes again: an end of file means it was killed, and so is its command."""
    connection.recv(1)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        become_command(*serve(sys.argv[2]))
    else:
        client(sys.argv[1], sys.argv[2], sys.argv[3:])
