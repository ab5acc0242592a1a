"""Optional extras: packages only some commands need, installed with ``gancli[NAME]``.

``pip install "gancli[tensorboard]"`` (``train --tensorboard``), ``"gancli[plot]"``
(``gancli plot``), ``"gancli[export]"`` (``gancli export --format onnx``). A command that needs
a missing one stops with a one-line error naming the install command, before it does any work.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from gancli.errors import GancliError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise a ``GancliError`` whose hint installs ``gancli[extra]``.

    ``purpose`` names what needs it, e.g. ``"--tensorboard"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise GancliError(f"{purpose} needs the Python package '{package}', which is not installed",
                          hint=f'pip install "gancli[{extra}]"') from None
