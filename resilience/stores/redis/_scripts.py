"""The Lua scripts, loaded once, and the one way to run them (sync and async).

Each script ships as a ``.lua`` file next to this module; the breaker scripts share
``breaker.lua`` and every script starts with ``prelude.lua``. The SHA1 of each is
computed at import: a call is one ``EVALSHA``, and only when the server answers
``NOSCRIPT`` (after a restart, a failover or ``SCRIPT FLUSH``) is the script loaded and
the call repeated. Nothing asks ``SCRIPT EXISTS`` per call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

__all__ = [
    "BH_STATUS",
    "BH_SYNC",
    "CB_ACQUIRE",
    "CB_FLUSH",
    "CB_FORCE",
    "CB_RECORD",
    "CB_RELEASE",
    "CB_STATUS",
    "PING",
    "RB_FLUSH",
    "SCRIPTS",
    "TB_CANCEL",
    "TB_PEEK",
    "TB_RESHAPE",
    "TB_TAKE",
    "Script",
    "aevalsha",
    "evalsha",
]


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str


def _read(name: str) -> str:
    return (resources.files(__package__) / f"{name}.lua").read_text(encoding="utf-8")


def _script(name: str, *shared: str) -> Script:
    source = "\n".join(_read(part) for part in ("prelude", *shared, name))
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


PING = _script("ping")
CB_ACQUIRE = _script("cb_acquire", "breaker")
CB_RECORD = _script("cb_record", "breaker")
CB_RELEASE = _script("cb_release", "breaker")
CB_FORCE = _script("cb_force", "breaker")
CB_STATUS = _script("cb_status", "breaker")
CB_FLUSH = _script("cb_flush", "breaker")
TB_TAKE = _script("tb_take")
TB_CANCEL = _script("tb_cancel")
TB_PEEK = _script("tb_peek")
TB_RESHAPE = _script("tb_reshape")
RB_FLUSH = _script("rb_flush")
BH_SYNC = _script("bh_sync")
BH_STATUS = _script("bh_status")
SCRIPTS = (
    PING,
    CB_ACQUIRE,
    CB_RECORD,
    CB_RELEASE,
    CB_FORCE,
    CB_STATUS,
    CB_FLUSH,
    TB_TAKE,
    TB_CANCEL,
    TB_PEEK,
    TB_RESHAPE,
    RB_FLUSH,
    BH_SYNC,
    BH_STATUS,
)


def evalsha(client: Any, script: Script, keys: Sequence[str], args: Sequence[object]) -> Any:
    """Run ``script`` on a sync client (``redis.Redis`` or ``redis.RedisCluster``)."""
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        client.script_load(script.source)
        return client.evalsha(script.sha, len(keys), *keys, *args)


async def aevalsha(client: Any, script: Script, keys: Sequence[str], args: Sequence[object]) -> Any:
    """Run ``script`` on a ``redis.asyncio`` client."""
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(script.source)
        return await client.evalsha(script.sha, len(keys), *keys, *args)
