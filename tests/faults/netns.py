"""Network namespaces joined to the host by veth pairs: a real link between the controller and an agent, cut at will.

Each :class:`Namespace` is one device's own network stack (``ip netns add``)
with a point-to-point /30 to the host::

    host  jfh<id>  10.213.X.(4i+1)/30  <-- veth -->  jfn<id>  10.213.X.(4i+2)/30  namespace jf<id>

A process started with :meth:`Namespace.prefix` (``ip netns exec NS ...``,
which execs the command, so its pid is the daemon's) sees only that link and
its own loopback. :meth:`Namespace.cut` takes the host end down: the device's
end loses its carrier and every packet either way is dropped, as when a
switch port or a Wi-Fi link dies (no RST, no ICMP: connections hang until a
deadline or keepalive gives up). :meth:`Namespace.heal` brings it back, and
the TCP connections that were waiting carry on.

:func:`network_namespaces` creates them and always deletes them (namespaces,
links) however the test ends; where ``ip netns add`` is refused (not root,
no ``ip``), the test skips, or fails under ``JETFLEET_REQUIRE_FAULTS=1``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from faults.harness import fault_unavailable


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raises with its stderr when ``check`` and it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


@dataclass(frozen=True)
class Namespace:
    """One network namespace and its veth link to the host."""

    name: str  # the namespace (``ip netns exec NAME``)
    host_if: str  # the host end of the veth pair: what cut/heal switch
    ns_if: str  # the namespace's end
    host_ip: str  # the host's address on the link: where processes in the namespace dial the host
    ns_ip: str  # the namespace's address: where the host dials processes in it
    note: Callable[..., None] = lambda what, **detail: None  # the test's timeline

    @property
    def prefix(self) -> list[str]:
        """The command prefix that runs a program inside this namespace."""
        return ["ip", "netns", "exec", self.name]

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace and wait for it."""
        return subprocess.run([*self.prefix, *argv], capture_output=True, text=True, timeout=timeout)

    def cut(self) -> None:
        """Take the link down (the host end): nothing passes either way until :meth:`heal`."""
        ip("link", "set", self.host_if, "down")
        self.note("link cut", namespace=self.name, link=self.host_if)

    def heal(self) -> None:
        """Bring the link back up (addresses and routes are restored with it)."""
        ip("link", "set", self.host_if, "up")
        self.note("link healed", namespace=self.name, link=self.host_if)

    @property
    def up(self) -> bool:
        """Whether the host end is administratively up (``UP`` among the link's flags)."""
        flags = ip("-o", "link", "show", "dev", self.host_if).stdout.partition("<")[2].partition(">")[0]
        return "UP" in flags.split(",")


def _free_block() -> int:
    """A third octet X such that no address of this machine is in 10.213.X.0/24 (room for 64 links)."""
    taken = ip("-o", "-4", "addr", "show").stdout
    start = os.getpid() % 250
    for k in range(250):
        x = (start + k) % 250 + 1
        if f" 10.213.{x}." not in taken:
            return x
    fault_unavailable("no free /24 in 10.213.0.0/16 for the test's links")


def _link(ns: Namespace) -> None:
    """The veth pair into the namespace ``ns.name`` (which exists), both ends addressed and up."""
    ip("link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if)
    ip("link", "set", ns.ns_if, "netns", ns.name)
    ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
    ip("link", "set", ns.host_if, "up")
    ip("-n", ns.name, "addr", "add", f"{ns.ns_ip}/30", "dev", ns.ns_if)
    ip("-n", ns.name, "link", "set", ns.ns_if, "up")
    ip("-n", ns.name, "link", "set", "lo", "up")


def _remove(ns: Namespace) -> None:
    """Delete the namespace (which deletes its end of the veth, and so the pair) and the host end if left."""
    ip("netns", "del", ns.name, check=False)
    ip("link", "del", ns.host_if, check=False)


@contextlib.contextmanager
def network_namespaces(count: int, note: Callable[..., None] | None = None) -> Iterator[list[Namespace]]:
    """``count`` namespaces, each with a veth link to the host; all removed afterwards, even on failure.

    Processes started inside must be stopped before this context ends (a
    namespace with a process in it lingers until the process exits).
    """
    if shutil.which("ip") is None:
        fault_unavailable("the `ip` command (iproute2) is not installed")
    tag = f"{os.getpid() % 100000}"
    assert 0 < count <= 64, "one /24 holds 64 links"
    x = _free_block()
    made: list[Namespace] = []
    try:
        for i in range(count):
            ns = Namespace(
                name=f"jf{tag}n{i}",
                host_if=f"jfh{tag}n{i}",
                ns_if=f"jfn{tag}n{i}",
                host_ip=f"10.213.{x}.{4 * i + 1}",
                ns_ip=f"10.213.{x}.{4 * i + 2}",
                note=note or (lambda what, **detail: None),
            )
            _remove(ns)  # a leftover of a killed run with the same pid
            try:
                ip("netns", "add", ns.name)
            except RuntimeError as exc:
                fault_unavailable(f"cannot create a network namespace (needs root/CAP_NET_ADMIN): {exc}")
            made.append(ns)
            _link(ns)
            ns.note("namespace up", namespace=ns.name, host=ns.host_ip, device=ns.ns_ip)
        yield made
    finally:
        for ns in made:
            _remove(ns)
