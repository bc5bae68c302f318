"""--scheduler pointing at something that is not a Dask scheduler (issue 23, second
round): a server that accepts and says nothing, or an HTTP server, gives "no Dask
scheduler answered" within the timeout (it used to hang Client() for minutes, or raise
MemoryError), and a scheme other than tcp:// is a usage error naming the supported one
(it used to be a TypeError traceback). In-process calls run under pytest-timeout;
commands run in subprocesses with a timeout."""

import contextlib
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from bnfast.executors import connect

pytest.importorskip("distributed")
pytestmark = pytest.mark.timeout(90)


@contextlib.contextmanager
def server(reply):
    """A TCP server on 127.0.0.1 that is not Dask: each connection is held open and,
    when ``reply`` is given, answered with it after the first bytes read (HTTP).
    Yields its tcp:// address."""
    listener = socket.create_server(("127.0.0.1", 0))
    held, stop = [], threading.Event()

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)
            if reply is not None:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


SILENT = None
HTTP = b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize("reply", [SILENT, HTTP], ids=["silent", "http"])
def test_connect_to_a_server_that_is_not_dask_fails_within_its_timeout(reply):
    with server(reply) as address:
        start = time.monotonic()
        with pytest.raises(OSError, match=f"no Dask scheduler answered at {address}"):
            connect(address, timeout=2)
        assert time.monotonic() - start < 2 + 3


@pytest.mark.parametrize("address", ["tls://127.0.0.1:8786", "ws://127.0.0.1:8786",
                                     "inproc://x:1"])
def test_other_schemes_are_refused_naming_the_supported_one(address):
    with pytest.raises(ValueError, match="not supported; the supported scheme is tcp://"):
        connect(address, timeout=2)


def bnfast(*args):
    return subprocess.run([sys.executable, "-m", "bnfast", *args], capture_output=True,
                          text=True, timeout=60, cwd=tempfile.gettempdir())


@pytest.mark.parametrize("command", [("search", "theorem-4-1", "--instances", "1000"),
                                     ("run", "decoupling", "--quick")])
def test_commands_exit_2_instead_of_hanging(command):
    # The HTTP server: the silent one takes the commands' whole 10 s timeout (the
    # connect tests above check it, with 2 s); both commands connect the same way.
    with server(HTTP) as address:
        start = time.monotonic()
        p = bnfast(*command, "--scheduler", address)
    assert p.returncode == 2, p.stderr
    assert f"--scheduler: no Dask scheduler answered at {address}" in p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert time.monotonic() - start < 10 + 15       # the commands' timeout is 10 s


@pytest.mark.parametrize("command", [("search", "theorem-4-1"), ("run", "decoupling")])
def test_commands_refuse_another_scheme_as_a_usage_error(command):
    p = bnfast(*command, "--scheduler", "tls://127.0.0.1:8786")
    assert p.returncode == 2, p.stderr
    assert "the scheme 'tls://' is not supported; the supported scheme is tcp://" in p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
