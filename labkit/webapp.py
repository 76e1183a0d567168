"""A tiny web app for the labs: it says where it runs and who asked.

``python3 -m labkit.webapp --name blue 80`` answers every GET with status
200 and one line, for example ``Hello from blue! You came from
192.168.1.2.``, so a learner (or a test) sees which address the request
arrived from after NAT. labkit finds these processes through ``/proc``
(their command line names this module) and stops them when a stage no
longer has them.

It speaks just enough HTTP/1.0 (GET and HEAD; one request per
connection) on :mod:`socketserver`, not :mod:`http.server`: a stage
starts one per lab, a class starts thirty at the same moment, and
http.server's imports (email, http.client, ssl) tripled the app's start.
"""

from __future__ import annotations

import os
import socketserver
import sys

#: what the app calls itself in its ``Server`` header
SERVER = "labkit-webapp"
_LINE = 8192  # the longest request or header line read
_HEADERS = 100  # the most header lines read


def answer(name: str, method: str, client: str) -> bytes:
    """The whole response to one request: status line, headers and (for GET) the body.

    Examples
    --------
    >>> print(answer("blue", "GET", "192.168.1.3").decode().replace("\\r", ""))
    HTTP/1.0 200 OK
    Server: labkit-webapp
    Content-Type: text/plain; charset=utf-8
    Content-Length: 44
    Connection: close
    <BLANKLINE>
    Hello from blue! You came from 192.168.1.3.
    <BLANKLINE>
    >>> answer("blue", "POST", "192.168.1.3").split(b"\\r\\n")[0]
    b'HTTP/1.0 501 Not Implemented'
    """
    if method in ("GET", "HEAD"):
        status, body = "200 OK", f"Hello from {name}! You came from {client}.\n"
    elif method:
        status, body = "501 Not Implemented", f"{method[:20]}: this app answers GET and HEAD\n"
    else:
        status, body = "400 Bad Request", "not an HTTP request\n"
    data = body.encode()
    head = (
        f"HTTP/1.0 {status}\r\nServer: {SERVER}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head if method == "HEAD" else head + data


def make_handler(name: str) -> type[socketserver.StreamRequestHandler]:
    """A request handler class that greets from ``name``.

    Examples
    --------
    >>> make_handler("blue").server_name
    'blue'
    """

    class Handler(socketserver.StreamRequestHandler):
        server_name = name
        timeout = 10  # a client that sends nothing does not hold a thread forever

        def handle(self) -> None:
            try:
                words = self.rfile.readline(_LINE).decode("latin-1").split()
                for _ in range(_HEADERS):  # read the headers up to the blank line
                    if self.rfile.readline(_LINE) in (b"\r\n", b"\n", b""):
                        break
                method = words[0] if len(words) >= 2 and words[0].isalpha() else ""
                self.wfile.write(answer(name, method, self.client_address[0]))
            except OSError:
                pass  # the client went away or timed out: nothing to answer

    return Handler


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


USAGE = "usage: python3 -m labkit.webapp [--name NAME] PORT"


def parse_args(argv: list[str]) -> tuple[str, int]:
    """``[--name NAME] PORT`` -> (name, port); exit 2 with the usage otherwise.

    (Not argparse, whose import alone costs the app a third of its start.)

    Examples
    --------
    >>> parse_args(["--name", "blue", "80"])
    ('blue', 80)
    >>> parse_args(["8080"])
    ('labkit', 8080)
    """
    name, rest = "labkit", list(argv)
    if rest[:1] in (["-h"], ["--help"]):
        print(f"{USAGE}\n\n{__doc__.strip().splitlines()[0]}")
        raise SystemExit(0)
    if rest[:1] == ["--name"] and len(rest) >= 2:
        name, rest = rest[1], rest[2:]
    elif rest[:1] and rest[0].startswith("--name="):
        name, rest = rest[0].split("=", 1)[1], rest[1:]
    if len(rest) != 1 or not rest[0].isdigit() or not 0 < int(rest[0]) < 65536:
        print(f"{USAGE}\nPORT is a number from 1 to 65535, such as 80", file=sys.stderr)
        raise SystemExit(2)
    return name, int(rest[0])


def main(argv: list[str] | None = None) -> None:
    """Serve until killed.

    Examples
    --------
    >>> main(["--name", "blue", "8080"])  # doctest: +SKIP
    """
    name, port = parse_args(sys.argv[1:] if argv is None else argv)
    with _Server(("0.0.0.0", port), make_handler(name)) as server:  # noqa: S104
        _say_ready()
        server.serve_forever()


def _say_ready() -> None:
    """Tell labkit, which started this app, that it listens (one byte on its pipe).

    The variable is ``labkit.kernel.services.READY_FD``, spelled out here:
    importing that module would cost the app more than it starts in.
    """
    fd = os.environ.pop("LABKIT_WEBAPP_READY_FD", "")
    if fd.isdigit():
        try:
            os.write(int(fd), b"1")
            os.close(int(fd))
        except OSError:
            pass  # started by hand with a stale variable: nobody waits


if __name__ == "__main__":
    main()
