"""Files that hold secrets (token store, its lock, the state secret): ours, closed to others, no links.

What sits on disk before start-up is not trusted: a folder left world-writable lets anyone swap
the token file, a file owned by another user may be theirs to read or rewrite, and a symbolic
link planted at a lock or secret path sends our writes (or reads) elsewhere. So every such path
is checked at start: what this user owns is made private (chmod), what it does not is refused
with one line; and every open passes O_NOFOLLOW, so a link planted later is refused, not followed.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

from .runtime.errors import ConfigError

log = logging.getLogger("sfdcflex")

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def secure_folder(folder: Path) -> None:
    """Create the folder (0700), or check an existing one is ours and make it 0700."""
    folder = Path(folder)
    if not folder.exists():
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    info = folder.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"config: {folder} is not a folder")
    _check_owner(folder, info)
    if stat.S_IMODE(info.st_mode) != FOLDER_MODE:
        os.chmod(folder, FOLDER_MODE)   # also undoes mkdir's umask filtering


def secure_file(path: Path) -> None:
    """Check an existing file is ours and not a link, and make it 0600; nothing if it is absent."""
    try:
        descriptor = open_private(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    os.close(descriptor)


def open_private(path: Path, flags: int) -> int:
    """os.open without following a symbolic link, refusing a file of another user or anything
    but a regular file, made 0600."""
    try:
        # O_NONBLOCK: opening a FIFO planted at the path would otherwise wait for a writer for
        # ever (open(2)); so it opens at once, and fstat below refuses it. Regular files ignore it.
        descriptor = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, FILE_MODE)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ConfigError(f"config: {path} is a symbolic link; refusing to follow it") from None
        if error.errno == errno.ENXIO:   # a FIFO opened for writing with no reader
            raise ConfigError(f"config: {path} is not a regular file") from None
        raise
    try:
        info = os.fstat(descriptor)
        _check_owner(Path(path), info)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"config: {path} is not a regular file")
        if stat.S_IMODE(info.st_mode) != FILE_MODE:
            os.fchmod(descriptor, FILE_MODE)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def read_private(path: Path) -> bytes:
    """The whole file, opened as `open_private` opens it."""
    with os.fdopen(open_private(path, os.O_RDONLY), "rb") as handle:
        return handle.read()


def _check_owner(path: Path, info: os.stat_result) -> None:
    if info.st_uid != os.geteuid():
        raise ConfigError(f"config: {path} belongs to user id {info.st_uid}, not to this process's "
                          f"user ({os.geteuid()}); give it to this user (chown) or move it away")


def check_settings_file(path: Path) -> os.stat_result | None:
    """Before the settings file is read: a regular file (a FIFO would hang the read), owned by
    this user or root; None when it is absent (the reader says so). ConfigError in one line."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"config: env file {path} is not a regular file")
    if info.st_uid not in (os.geteuid(), 0):
        raise ConfigError(f"config: env file {path} belongs to user id {info.st_uid}, neither this "
                          f"process's user ({os.geteuid()}) nor root; give it to one of them (chown)")
    return info


def secure_settings_file(path: Path, info: os.stat_result, holds_secrets: bool) -> None:
    """The settings name the upstream URLs and hold the auth token and client secret: no other
    user may write them, and, when they hold a secret, read them (group read stays, as for a
    root-owned file of the service's group, mode 0640). Ours is made so; root's is refused."""
    loose = stat.S_IMODE(info.st_mode) & (0o022 | (0o007 if holds_secrets else 0))
    if not loose:
        return
    if info.st_uid == os.geteuid():
        mode = stat.S_IMODE(info.st_mode) & ~loose
        os.chmod(path, mode)
        log.warning("env file %s was mode %04o, open to other users; made it %04o",
                    path, stat.S_IMODE(info.st_mode), mode)
        return
    wrong = "writable by other users" if loose & 0o022 else "readable by every user and holds secrets"
    raise ConfigError(f"config: env file {path} is {wrong} (mode {stat.S_IMODE(info.st_mode):04o}); "
                      f"chmod {'go-w' if loose & 0o022 else 'o-rwx'} it")
