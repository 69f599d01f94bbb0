"""Measurements that run in a fresh process of their own (`speed.py` itself)."""

import json
import os
import subprocess
import sys

SPEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "speed.py")


class WorkerError(RuntimeError):
    """A worker process failed or ran out of time."""


def run_worker(arguments, settings, env=None, timeout=None):
    """Runs `speed.py ARGUMENTS --settings JSON`; returns its JSON answer.

    The process is started through `sh`, which forks it: one started straight
    from this process would inherit this process's `ru_maxrss`, as Linux
    carries the peak RSS across `exec`.

    Args:
        arguments: the worker's options, such as `["--memory-of", key, name]`.
        settings: the `Settings` it measures with.
        env: its environment. Defaults to this process's.
        timeout: seconds, or `None`.

    Returns:
        What the worker printed as JSON on its last line of output.

    Raises:
        WorkerError: when it exits with an error or runs out of time; the
            message holds the last line of its error output.
    """
    command = ["sh", "-c", '"$@"; exit $?', "sh", sys.executable, SPEED, *arguments]
    command += ["--settings", settings.to_json()]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise WorkerError(f"timed out after {timeout} s") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no error output"]
        raise WorkerError(f"exit status {done.returncode}: {lines[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
