"""The suite's network guard (tests/network_guard.py): loopback passes, anything else fails at once and
names the test. No packet leaves: the real connect underneath is replaced by a recorder."""

import socket
import urllib.request

import pytest

import network_guard


@pytest.fixture
def calls(monkeypatch):
    seen = []
    monkeypatch.setattr(network_guard, "_real_connect", lambda sock, address: seen.append(address))
    monkeypatch.setattr(network_guard, "_real_getaddrinfo", lambda host, *a, **k: seen.append(host) or [])
    return seen


def test_outside_addresses_are_refused_with_the_test_name(calls):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(network_guard.NetworkBlocked, match="test_outside_addresses_are_refused_with_the_test_name"
                                                               ".*192.0.2.1:443"):
            s.connect(("192.0.2.1", 443))
    with pytest.raises(network_guard.NetworkBlocked, match="tried to look up pypi.org"):
        socket.getaddrinfo("pypi.org", 443)
    with pytest.raises(OSError, match="look up huggingface.co"):  # what a download in a library meets
        urllib.request.urlopen("https://huggingface.co/api/models", timeout=5)
    assert calls == []


def test_loopback_and_udp_pass(calls):
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.connect((host, 9))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 80))  # replaced: nothing is sent in any case
    socket.getaddrinfo("localhost", 80)
    assert calls == [("127.0.0.1", 9), ("::1", 9), ("192.0.2.1", 80), "localhost"]
