"""Run a command in a network namespace of its own, with loopback only.

``python -m cronfleet_devcluster.netns -- COMMAND...`` (as root) runs COMMAND
in fresh network, mount and PID namespaces. Inside, loopback is up and no
interface leads out, so nothing the command starts (the control plane, the
real node, its pods) can reach another machine, and nothing outside can
reach them. The real node (``cronfleet_devcluster.node``) refuses to start
anywhere else.

The mount namespace keeps what containerd, the CNI plugins and the kubelet
write to fixed host paths (``/run/containerd``, ``/run/netns``,
``/var/lib/cni``, ``/var/log/containers``) on private tmpfs mounts, and
hides the host's nameservers. The PID namespace makes this program its init:
it reaps orphans (containerd's shims are re-parented to it), and when it
exits the kernel kills whatever is left, so no container outlives a run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

# Paths containerd 1.6, the CNI plugins and the kubelet write to whatever
# their configuration says.
PRIVATE_DIRECTORIES = (
    Path("/run/containerd"),
    Path("/run/netns"),
    Path("/var/lib/cni"),
    Path("/var/log/containers"),
)
INSIDE_FLAG = "--inside-namespaces"


class NamespaceError(RuntimeError):
    """The namespaces could not be made; the message says what was refused."""


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NamespaceError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")


def _set_up_inside() -> None:
    _run("ip", "link", "set", "lo", "up")
    for directory in PRIVATE_DIRECTORIES:
        directory.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(directory))
    # No nameserver: a name lookup fails at once instead of waiting on one
    # that cannot be reached.
    empty = PRIVATE_DIRECTORIES[0] / "resolv.conf"
    empty.write_text("")
    _run("mount", "--bind", str(empty), "/etc/resolv.conf")


def _run_as_init(command: list[str]) -> int:
    """Run ``command`` as PID 1's child: forward signals, reap orphans, return its status."""
    child = subprocess.Popen(command)

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if pid == child.pid:
            return os.waitstatus_to_exitcode(status) % 256


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    inside = bool(args) and args[0] == INSIDE_FLAG
    if inside:
        args = args[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m cronfleet_devcluster.netns -- COMMAND [ARG...]", file=sys.stderr)
        sys.exit(64)
    if inside:
        try:
            _set_up_inside()
        except NamespaceError as error:
            print(f"cronfleet netns: {error}", file=sys.stderr)
            sys.exit(1)
        sys.exit(_run_as_init(args))
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        print(
            "cronfleet netns: needs root and util-linux `unshare` to make network, "
            "mount and PID namespaces",
            file=sys.stderr,
        )
        sys.exit(1)
    os.execv(
        unshare,
        [
            unshare,
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--mount-proc",
            # If unshare itself is killed, its child (our init) goes too, and
            # with it everything in the PID namespace.
            "--kill-child",
            sys.executable,
            "-m",
            "cronfleet_devcluster.netns",
            INSIDE_FLAG,
            "--",
            *args,
        ],
    )


if __name__ == "__main__":
    main()
