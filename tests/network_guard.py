"""No test may reach beyond this machine: a TCP connection to an address outside loopback, or a
name lookup for a host other than this one, fails at once with the test's name, instead of
hanging on a closed network or succeeding from a warm cache on one machine and not on another.

UDP `connect` stays allowed: it sends nothing, and libraries use it to learn their own address.
Installed by conftest.py for the whole suite; `install()` is idempotent.
"""

from __future__ import annotations

import ipaddress
import os
import socket

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NetworkBlocked(ConnectionRefusedError):
    """Raised instead of leaving the machine; a ConnectionError, so clients fail as if refused."""


def _test_name() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "outside a test").rsplit(" (", 1)[0]


def _local_host(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%")[0]
    if host in ("localhost", "", socket.gethostname()) or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _check(sock: socket.socket, address) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM \
            and not _local_host(address[0]):
        raise NetworkBlocked(f"{_test_name()}: tried to connect to {address[0]}:{address[1]}; tests reach "
                             "loopback only (tests/network_guard.py)")


def _connect(self, address):
    _check(self, address)
    return _real_connect(self, address)


def _connect_ex(self, address):
    _check(self, address)
    return _real_connect_ex(self, address)


def _getaddrinfo(host, *args, **kwargs):
    if not _local_host(host):
        raise NetworkBlocked(f"{_test_name()}: tried to look up {host}; tests reach loopback only "
                             "(tests/network_guard.py)")
    return _real_getaddrinfo(host, *args, **kwargs)


def install() -> None:
    socket.socket.connect = _connect
    socket.socket.connect_ex = _connect_ex
    socket.getaddrinfo = _getaddrinfo
