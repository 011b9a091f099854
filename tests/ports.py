"""A free loopback port, for the servers and launchers tests start (Hub servers, accelerate)."""

import socket


def free_port() -> int:
    """A port nothing listens on now; the OS may hand it out again, so use it at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
