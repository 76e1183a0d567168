"""JupyterLab's file manager for the course: it never leaves the course folder.

(:func:`labkit.jupyter.install_server_config` names it in the server's
settings.) The server itself may run as root (only root can make sandboxes where
user namespaces are forbidden to ordinary users); it runs no learner
code, since kernels and terminals are sandboxed. What is left between a
learner and the server is the file browser, which follows links: a
learner who may write the course folder could link ``/etc/shadow`` into
it. :class:`ConfinedContentsManager` refuses any path that leads outside
the course folder and any file with a second name (a hard link).
"""

from __future__ import annotations

import os

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web


class ConfinedContentsManager(AsyncLargeFileManager):
    """Jupyter's file manager, that never leaves the course folder.

    Jupyter follows symbolic links; a server running as root would then
    read or write any file of the machine for whoever can make a link in
    the course folder (a learner, from a sandbox). This one answers 404
    for a path whose real location is outside ``root_dir`` and for a
    file with more than one name.

    Examples
    --------
    >>> ConfinedContentsManager(root_dir="/tmp")._get_os_path("..")  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    tornado.web.HTTPError: HTTP 404: Not Found (.. is outside root contents directory)
    """

    def _get_os_path(self, path: str) -> str:
        os_path = super()._get_os_path(path)
        root = os.path.realpath(self.root_dir)
        real = os.path.realpath(os_path)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise web.HTTPError(404, f"{path} leads outside the course folder")
        try:
            st = os.stat(real)
        except OSError:
            return os_path
        if not os.path.isdir(real) and st.st_nlink > 1:
            raise web.HTTPError(404, f"{path} has another name elsewhere (a hard link)")
        return os_path
