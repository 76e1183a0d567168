"""``python -m labkit``: the same as the ``labkit`` command.

Examples
--------
>>> import subprocess, sys
>>> subprocess.run([sys.executable, "-m", "labkit", "--version"]).returncode  # doctest: +SKIP
0
"""

from labkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
