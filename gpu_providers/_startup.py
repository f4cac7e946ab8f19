"""Boot-time setup carried by a startup script (no I/O).

Providers without fields of their own for environment variables or an SSH key deliver
``LaunchRequest.env`` / ``ssh_public_key`` / ``startup_script`` as one shell script that the
instance runs once, as root, at first boot: Lambda Cloud as cloud-init ``user_data`` (a text
starting with ``#!`` is a valid user-data script, https://cloudinit.readthedocs.io/en/latest/
explanation/format.html), Paperspace as a startup script (``POST /startup-scripts``,
``isRunOnce``; SkyPilot installs its SSH key the same way, sky/provision/paperspace/utils.py
@ 005261080a6b8102f3d95ff2147a855250f40272).

The script this module writes:

1. appends ``export NAME='value'`` lines to ``/etc/environment`` (values quoted with
   ``shlex.quote``, inside a quoted here-document, so nothing in them is expanded) and exports
   the same variables for the rest of the script;
2. appends the public key to ``~<user>/.ssh/authorized_keys`` of the image's default user;
3. writes the caller's script (base64, so no quoting of it is needed) to a root-only file and
   ``exec``s it: its own ``#!`` line chooses the interpreter, bash when it has none.

Values with a newline, carriage return or NUL are refused: ``/etc/environment`` is a file of
lines. Nothing here logs or puts a value, a key or the script into an error message.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Mapping

from .errors import InvalidRequestError

__all__ = ["boot_script", "check_env", "check_public_key", "shell_script"]

#: Where the caller's script is written on the instance (root only).
SCRIPT_PATH = "/var/lib/gpu-providers/startup.sh"
_ENV_END = "GPU_PROVIDERS_ENV"
_SCRIPT_END = "GPU_PROVIDERS_SCRIPT"
_PUBLIC_KEY = re.compile(r"^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+")
_USER = re.compile(r"^[a-z_][a-z0-9_-]*$")


def check_env(provider: str, env: Mapping[str, str]) -> None:
    """Refuse values ``/etc/environment`` cannot hold (the value itself is never shown)."""
    for name, value in env.items():
        if any(c in value for c in "\n\r\0"):
            raise InvalidRequestError(
                f"env {name}: values must be one line (no newline, carriage return or NUL)",
                provider=provider,
            )


def check_public_key(provider: str, key: str) -> str:
    """A one-line OpenSSH public key (``ssh-ed25519 AAAA... comment``), stripped."""
    key = key.strip()
    if "\n" in key or "\r" in key or "\0" in key or not _PUBLIC_KEY.match(key):
        raise InvalidRequestError(
            "ssh_public_key must be one OpenSSH public key line ('ssh-ed25519 AAAA... comment')",
            provider=provider,
        )
    return key


def shell_script(provider: str, script: str) -> str:
    """The caller's script with a ``#!`` line (bash when it has none).

    ``startup_script`` is a shell script: cloud-config and other cloud-init formats are
    refused rather than run by a shell that would ignore them.
    """
    if script.startswith("#!"):
        return script
    first = script.lstrip().split("\n", 1)[0].strip().lower()
    if first.startswith(("#cloud-config", "#include", "#cloud-boothook", "#part-handler")) or (
        first.startswith("content-type:")
    ):
        raise InvalidRequestError(
            "startup_script must be a shell script; cloud-init formats other than a script "
            "are not accepted",
            provider=provider,
        )
    return "#!/bin/bash\n" + script


def boot_script(
    provider: str,
    *,
    script: str | None,
    env: Mapping[str, str],
    public_key: str | None = None,
    user: str | None = None,
) -> str | None:
    """One shell script doing what the request asks at first boot, or None for nothing.

    Args:
        provider: For errors.
        script: The caller's startup script.
        env: Variables for ``/etc/environment`` (and the script).
        public_key: An OpenSSH public key for ``user``'s ``authorized_keys``.
        user: The image's default login user (needed with ``public_key``).
    """
    check_env(provider, env)
    if not env and public_key is None:
        return None if script is None else shell_script(provider, script)
    lines = [
        "#!/bin/bash",
        "# Written by gpu_providers (skypilot-sdk): environment, SSH key, startup script.",
        "set -eu",
    ]
    if env:
        exports = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
        lines += [f"cat >> /etc/environment <<'{_ENV_END}'", *exports, _ENV_END, *exports]
    if public_key is not None:
        key = check_public_key(provider, public_key)
        if user is None or not _USER.match(user):
            raise ValueError("a valid login user is needed to install an SSH key")
        home = f"/home/{user}/.ssh"
        lines += [
            f"install -d -m 700 -o {user} -g {user} {home}",
            f"printf '%s\\n' {shlex.quote(key)} >> {home}/authorized_keys",
            f"chown {user}:{user} {home}/authorized_keys",
            f"chmod 600 {home}/authorized_keys",
        ]
    if script is not None:
        encoded = base64.encodebytes(shell_script(provider, script).encode()).decode()
        lines += [
            "umask 077",
            f"mkdir -p {SCRIPT_PATH.rsplit('/', 1)[0]}",
            f"base64 -d > {SCRIPT_PATH} <<'{_SCRIPT_END}'",
            encoded.rstrip("\n"),
            _SCRIPT_END,
            f"chmod 700 {SCRIPT_PATH}",
            f"exec {SCRIPT_PATH}",
        ]
    return "\n".join(lines) + "\n"
