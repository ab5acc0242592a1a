"""User-facing errors.

Anything a user can cause (a bad flag, a missing file, an unknown preset, a
diverged run) is raised as a ``GancliError``: a one-line message plus a hint.
``gancli.cli.main`` turns it into ``error: ...`` / ``hint: ...`` on stderr and
the exit code below, never a traceback (set ``GANCLI_DEBUG=1`` to see one).
"""

from __future__ import annotations

import reprlib

# Exit codes, documented in the README. Click/Typer already use 2 for usage errors.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2, the shell's convention


def signal_exit_code(signum: int) -> int:
    """The exit code of a run stopped by signal ``signum``: 128 + signum, as a shell reports a
    process killed by it (130 SIGINT, 129 SIGHUP, 143 SIGTERM, 138 SIGUSR1 on Linux)."""
    return 128 + int(signum)


class GancliError(Exception):
    """A user error: printed as one line plus a hint, exit code ``exit_code``."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class ConfigError(GancliError):
    """A bad preset, config file or ``--set`` override (exit 2: it is a usage error)."""

    exit_code = EXIT_USAGE


class UsageError(GancliError):
    """A bad command-line value outside the config schema, e.g. ``--seeds`` (exit 2)."""

    exit_code = EXIT_USAGE


class PresetError(ConfigError):
    """An unknown or malformed preset."""


class RegistryError(GancliError):
    """An unknown name in one of the registries."""


class DataError(GancliError):
    """Missing, empty or unusable data."""


class CheckpointError(GancliError):
    """A missing, corrupt, foreign or too-new checkpoint."""


class DeviceError(GancliError):
    """A device that is not available here."""


class TrainingDiverged(GancliError):
    """NaN or inf in a loss, a gradient or a weight: the run stopped, the last good checkpoint
    (``last_good``, None if there was none yet) is kept; ``step`` is the first bad step."""

    exit_code = EXIT_DIVERGED

    def __init__(self, message: str, hint: str | None = None, step: int | None = None,
                 last_good=None):
        super().__init__(message, hint)
        self.step = step
        self.last_good = last_good


class Interrupted(GancliError):
    """A stop request (Ctrl-C, SIGTERM, SIGHUP, SIGUSR1): the run saved a checkpoint and stopped.

    ``exit_code`` is 130 for Ctrl-C and ``128 + signum`` for the other signals."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message, hint)
        if exit_code is not None:
            self.exit_code = exit_code


class RunInUse(GancliError):
    """Another process holds the run folder's lock (exit 1)."""


# Bounded at every level, so even a value whose full repr would be gigabytes (a YAML alias
# bomb: a list of lists of lists sharing one object) costs a few hundred operations.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 6, 6, 4
_REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = _REPR.maxarray = 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 200


def excerpt(value: object, limit: int = 80) -> str:
    """A bounded ``repr`` of a user-given ``value`` for an error message: at most ``limit``
    characters (a cut is marked with ``...``), computed without building the full repr.

    Every message that embeds a value from the command line or a file goes through this, so a
    huge or deeply shared value can never turn one error line into megabytes.
    """
    text = _REPR.repr(value)
    text = " ".join(text.split())  # one line, whatever the value held
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."
