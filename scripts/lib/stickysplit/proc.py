"""Every command the scripts and tests run to completion goes through run():
a command that hangs (a docker daemon that stops answering, an Envoy that
never finishes validating) must fail the run with its name, not stall it.

(Processes that serve until stopped, Envoy or Prometheus, are started with
subprocess.Popen by their own classes and ended by envoy.reap.)"""

import shlex
import subprocess


class TimedOut(RuntimeError):
    """A command did not finish within its timeout (it has been killed)."""


def run(cmd, timeout=60, *, capture=True, text=True, check=False, **kwargs):
    """subprocess.run(cmd) with output captured (as text unless `text` is
    False) and a timeout in seconds; on timeout raises TimedOut naming the
    command and what it printed so far. Other keyword arguments (cwd, env)
    go to subprocess.run."""
    try:
        return subprocess.run(cmd, timeout=timeout, capture_output=capture, text=text, check=check, **kwargs)
    except subprocess.TimeoutExpired as e:
        printed = b"".join(x if isinstance(x, bytes) else x.encode() for x in (e.stdout, e.stderr) if x)
        tail = printed[-2000:].decode(errors="replace")
        raise TimedOut(f"`{shlex.join(str(c) for c in cmd)}` did not finish within {timeout} s"
                       + (f"; its last output:\n{tail}" if tail else "")) from None
