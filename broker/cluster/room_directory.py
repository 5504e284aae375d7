"""Who is in each session's room across brokers, kept in Redis.

A room is a hash ``deskhand:room:<session id>``: for each role present, a record of where that
peer is connected (:class:`Occupant`: the broker, the connection, who it is). Each step is one
Lua script, so Redis orders them: of two peers joining at once on two brokers, the second sees
the first, as with one broker's hub.

A broker that dies (SIGKILL, power) cannot take its peers out. Each broker beats in the sorted
set ``deskhand:brokers`` (scored by Redis's own clock) every :data:`BEAT_SECONDS`; an occupant
whose broker has not beaten for :data:`LIVENESS_SECONDS` is dead: no script returns it, the
first to meet it removes it and says so (:attr:`Found.dead`), so that its partner is told it left.

Redis may lose the rooms (restarted without persistence, emptied): every beat, each broker also
puts back the record of each of its peers whose place is empty (:meth:`RoomDirectory.check_many`),
so peers on different brokers reach each other again within a second, without reconnecting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

from protocol.signalling import PeerInfo, Role

BEAT_SECONDS = 1.0
"""How often a broker says it is alive."""

LIVENESS_SECONDS = 5.0
"""A broker not heard from for this long is dead, and so are its peers' places in the rooms.

Long against :data:`BEAT_SECONDS`: a broker whose event loop stalls for a few seconds must not lose
its rooms (its peers would be told their partner left while both are still connected)."""

ROOM_TTL_SECONDS = 24 * 3600
"""A room nobody joined or left for this long goes (the codes and grants of its session ran out long before)."""

BROKERS = "deskhand:brokers"

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function decoded(record)
  local ok, value = pcall(cjson.decode, record)
  if ok and type(value) == 'table' and type(value['broker']) == 'string' then return value end
  return nil
end
-- 'alive', 'dead' (its broker stopped beating) or 'bad' (not a record: written by something else)
local function judge(record)
  local value = decoded(record)
  if not value then return 'bad' end
  local beat = redis.call('ZSCORE', KEYS[2], value['broker'])
  if beat ~= false and tonumber(beat) > now - tonumber(ARGV[1]) then return 'alive' end
  return 'dead'
end
-- the record of a live broker, else false (and the field removed, 'dead' said when it was a peer's)
local function live(field)
  local record = redis.call('HGET', KEYS[1], field)
  if not record then return false, '' end
  local verdict = judge(record)
  if verdict == 'alive' then return record, '' end
  redis.call('HDEL', KEYS[1], field)
  if verdict == 'dead' then return false, 'dead' end
  return false, ''
end
"""

# KEYS: room, brokers. ARGV: liveness ms, role, other role, record, room ttl ms.
# Returns {replaced record or '', other record or '', 'dead' or ''}.
_JOIN = _NOW + """
local previous = live(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local other, dead = live(ARGV[3])
return {previous or '', other or '', dead}
"""

# KEYS: room, brokers. ARGV: liveness ms, role, other role, conn.
# Returns {1 if the role was this connection's (now removed) else 0, other record or ''}.
_LEAVE = _NOW + """
local current = redis.call('HGET', KEYS[1], ARGV[2])
local value = current and decoded(current)
if not value or value['conn'] ~= ARGV[4] then return {0, ''} end
redis.call('HDEL', KEYS[1], ARGV[2])
local other = live(ARGV[3])
return {1, other or ''}
"""

# KEYS: room, brokers. ARGV: liveness ms, role. Returns {record or '', 'dead' or ''}.
_FIND = _NOW + """
local record, dead = live(ARGV[2])
return {record or '', dead}
"""

# KEYS: room, brokers. ARGV: liveness ms, role, other role, record, conn, room ttl ms.
# Returns {1 if the role's place was empty and is this record's again else 0, other record or '', 'dead' or ''}.
_CHECK = _NOW + """
local restored = 0
if not redis.call('HGET', KEYS[1], ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  restored = 1
end
local other, dead = live(ARGV[3])
return {restored, other or '', dead}
"""

# KEYS: room, brokers. ARGV: liveness ms. Returns the records of live brokers.
_MEMBERS = _NOW + """
local found = {}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if judge(fields[i + 1]) == 'alive' then table.insert(found, fields[i + 1]) end
end
return found
"""

# KEYS: brokers. ARGV: broker id, forget-after ms.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return now
"""


class Occupant(BaseModel):
    """Where one peer of a room is connected: read back from Redis, so checked like any input."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    broker: str = Field(min_length=1, max_length=64)
    conn: str = Field(min_length=1, max_length=64)
    info: PeerInfo


@dataclass(frozen=True)
class Joined:
    """What :meth:`RoomDirectory.join` found: the occupant the joiner replaced, the other role's."""

    replaced: Occupant | None
    other: Occupant | None
    other_dead: bool
    """The other role's occupant was on a dead broker (removed now)."""


@dataclass(frozen=True)
class Found:
    """What :meth:`RoomDirectory.find` found for a role."""

    occupant: Occupant | None
    dead: bool
    """An occupant was there on a dead broker, and is removed now: its partner should be told it left."""


@dataclass(frozen=True)
class Checked:
    """What :meth:`RoomDirectory.check_many` found for one connection held here."""

    restored: bool
    """Its place was empty and holds its record again."""
    other: Found


def room_key(session_id: str) -> str:
    return f"deskhand:room:{session_id}"


def _occupant(record: Any) -> Occupant | None:
    """The record as an :class:`Occupant`; None when absent or not one (written by something else)."""
    if not record:
        return None
    try:
        return Occupant.model_validate_json(record)
    except ValidationError:
        return None


class RoomDirectory:
    """The rooms in Redis: the steps of :class:`broker.cluster.rooms.ClusterRooms`, each one script."""

    def __init__(self, client: Redis, broker_id: str, liveness_seconds: float = LIVENESS_SECONDS) -> None:
        self._client = client
        self.broker_id = broker_id
        self._liveness_ms = int(liveness_seconds * 1000)
        self._join = client.register_script(_JOIN)
        self._leave = client.register_script(_LEAVE)
        self._find = client.register_script(_FIND)
        self._check = client.register_script(_CHECK)
        self._members = client.register_script(_MEMBERS)
        self._beat = client.register_script(_BEAT)

    def record(self, session_id: str, conn: str, info: PeerInfo) -> str:
        """This broker's record of its connection ``conn``."""
        del session_id  # the room's key names the session
        return json.dumps({"broker": self.broker_id, "conn": conn, "info": info.model_dump(mode="json")},
                          separators=(",", ":"))

    async def join(self, session_id: str, role: Role, record: str) -> Joined:
        """Make ``record`` the current ``role`` of the room."""
        replaced, other, dead = await self._join(
            keys=[room_key(session_id), BROKERS],
            args=[self._liveness_ms, role.value, role.other.value, record, ROOM_TTL_SECONDS * 1000],
        )
        return Joined(_occupant(replaced), _occupant(other), other_dead=bool(dead))

    async def leave(self, session_id: str, role: Role, conn: str) -> tuple[bool, Occupant | None]:
        """Take connection ``conn`` out of ``role``: (whether it was current there, the other role's occupant)."""
        current, other = await self._leave(
            keys=[room_key(session_id), BROKERS], args=[self._liveness_ms, role.value, role.other.value, conn],
        )
        return bool(current), _occupant(other)

    async def find(self, session_id: str, role: Role) -> Found:
        """The current ``role`` of the room, if on a live broker."""
        record, dead = await self._find(keys=[room_key(session_id), BROKERS], args=[self._liveness_ms, role.value])
        return Found(_occupant(record), dead=bool(dead))

    async def check_many(self, present: list[tuple[str, Role, str, PeerInfo]]) -> list[Checked]:
        """For each (session, role, connection, who) held here, in one round trip: put its record back
        when its role's place is empty (Redis restarted, or was emptied), and find the other role's."""
        async with self._client.pipeline(transaction=False) as pipe:
            for session_id, role, conn, info in present:
                await self._check(
                    keys=[room_key(session_id), BROKERS],
                    args=[self._liveness_ms, role.value, role.other.value, self.record(session_id, conn, info),
                          conn, ROOM_TTL_SECONDS * 1000],
                    client=pipe)
            answers = await pipe.execute()
        return [Checked(bool(restored), Found(_occupant(other), dead=bool(dead))) for restored, other, dead in answers]

    async def members(self, session_id: str) -> list[Occupant]:
        """Every occupant of the room on a live broker."""
        records = await self._members(keys=[room_key(session_id), BROKERS], args=[self._liveness_ms])
        return [occupant for occupant in map(_occupant, records) if occupant is not None]

    async def beat(self) -> None:
        """Say this broker is alive (and forget brokers silent for a long time)."""
        await self._beat(keys=[BROKERS], args=[self.broker_id, 100 * self._liveness_ms])
