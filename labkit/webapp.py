"""A tiny web app for the labs: it says where it runs and who asked.

``python3 -m labkit.webapp --name blue 80`` answers every GET with status
200 and one line, for example ``Hello from blue! You came from
192.168.1.2.``, so a learner (or a test) sees which address the request
arrived from after NAT. labkit finds these processes through ``/proc``
(their command line names this module) and stops them when a stage no
longer has them.
"""

from __future__ import annotations

import argparse
import os
import socketserver
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(name: str) -> type[BaseHTTPRequestHandler]:
    """A request handler class that greets from ``name``.

    Examples
    --------
    >>> make_handler("blue").server_name
    'blue'
    """

    class Handler(BaseHTTPRequestHandler):
        server_name = name
        server_version = "labkit-webapp"

        def _answer(self, body: bool) -> None:
            text = f"Hello from {name}! You came from {self.client_address[0]}.\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            if body:
                self.wfile.write(text)

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self._answer(True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(False)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True

    def server_bind(self) -> None:
        # HTTPServer asks the resolver for its own name (getfqdn), which in a
        # namespace with no name server waits for a timeout: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


def main(argv: list[str] | None = None) -> None:
    """Serve until killed.

    Examples
    --------
    >>> main(["--name", "blue", "8080"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(prog="python3 -m labkit.webapp", description=__doc__)
    parser.add_argument("--name", default="labkit")
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    with _Server(("0.0.0.0", args.port), make_handler(args.name)) as server:  # noqa: S104
        _say_ready()
        server.serve_forever()


def _say_ready() -> None:
    """Tell labkit, which started this app, that it listens (one byte on its pipe)."""
    fd = os.environ.pop("LABKIT_WEBAPP_READY_FD", "")
    if fd.isdigit():
        try:
            os.write(int(fd), b"1")
            os.close(int(fd))
        except OSError:
            pass  # started by hand with a stale variable: nobody waits


if __name__ == "__main__":
    main()
