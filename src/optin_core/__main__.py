"""``python -m optin_core``: the ``optin-core`` command line.

The command line needs click, which the ``cli`` extra installs
(``pip install 'optin-core[cli]'``); without it this prints how to get it
and exits 1.
"""

from __future__ import annotations

import sys

MISSING_CLICK = (
    "optin-core: the command line needs click, which the 'cli' extra "
    "installs: pip install 'optin-core[cli]'\n"
)


def main(args: list[str] | None = None) -> int:
    """Run the command line with ``args`` (``sys.argv[1:]`` by default);
    returns the exit code."""
    try:
        import click  # noqa: F401, PLC0415 (is the extra installed?)
    except ImportError:
        sys.stderr.write(MISSING_CLICK)
        return 1
    from ._cli import run  # noqa: PLC0415 (needs click)

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
