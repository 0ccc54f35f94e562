//! `[server] state = "redis://…"` / `"rediss://…"`: the run journal and the shared store in a
//! Redis (or Valkey) server shared by any number of serving processes (docs/redis.md).
//!
//! Layout (every journal key shares the `{j}` hash tag, so the scripts that touch several of
//! them stay on one slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `fs:m:NAME` | string | a `set_memory` value as JSON (`PX` TTL), or an `INCRBY` counter |
//! | `fs:{j}:run:ID` | hash | a run: `rec` (the record as accepted, JSON), `status`, `attempt`, `started`, `finished`, `error`, `owner`, `resumable`, and per step `k:`/`t:`/`b:`/`f:`/`d:`/`e:`/`c:`/`o:STEP` (kind, status, started, finished, due, error, checkpoint, order) |
//! | `fs:{j}:run:ID` | string | a run journaled finished (its steps all ran before it was journaled): the whole record's JSON text; it never changes (a retry makes it a hash) |
//! | `fs:{j}:log:NAME` | stream | endpoint NAME's runs in acceptance order: an entry `r ID` per run accepted unfinished, an entry `r ID1 r ID2 …` per batch of runs journaled finished (listings, cursors, retention) |
//! | `fs:{j}:count:NAME` | string | the number of runs `log:NAME` holds (retention by count) |
//! | `fs:{j}:leases` | sorted set | unfinished runs by lease expiry (ms, Redis clock); 0 = queued, unowned |
//! | `fs:{j}:delays` | sorted set | runs waiting on a `delay_ms`, by due time |
//! | `fs:{j}:endpoints` | set | endpoint names seen (the streams to list and purge) |
//!
//! Earlier versions kept the history in the sorted sets `all`, `ep:NAME`, `finished` and
//! `done:NAME` (by a `seq` counter); [`MIGRATE`] moves such a journal to the streams.
//!
//! Acknowledgement and redelivery are a *lease* sorted set (the reliable-queue pattern): a
//! process owns a run while its lease is in the future and renews the leases of all its
//! unfinished runs every `lease_s / 3`; a final status removes the lease (the acknowledgement);
//! any process's [`Backend::claim`] takes over runs whose lease expired (redelivery), raising
//! their attempt count. Lease times are read from Redis's own clock (`TIME`), so the
//! processes' clocks do not matter.
//!
//! Every multi-key change of a run is one Lua script (atomic, one round trip). Journal writes
//! (a run accepted, its events) go through one writer task per process
//! (src/state/redis_writer.rs) that sends everything queued meanwhile as one pipeline — plain
//! `XADD`s (an entry per endpoint) and one `MSET` for the runs journaled finished, `EVALSHA`s
//! of [`APPLY`] for the rest (group commit): accepting a run costs one round trip on the
//! answer path.
//!
//! All Redis I/O runs on a small dedicated tokio runtime owned by the backend. Async callers
//! await a task spawned there; the synchronous shared store (templates call `memoryGet` /
//! `incrementAndGet` inside a render) waits for it inside [`tokio::task::block_in_place`] when
//! called from a multi-thread runtime worker, so the other tasks of that worker move to another
//! thread instead of stalling (docs/redis.md, "Templates and Redis").

use super::{
    Backend, Retention, RetryFrom, RunEvent, RunFilter, RunPage, RunRecord, RunStatus, RunSummary,
    StateError, StateResult, StepRecord, StepStatus,
};
use crate::error::{Error, ErrorKind};
use crate::host::{SharedStore, STORE_UNAVAILABLE};
use crate::value::Value;
use futures_util::future::{BoxFuture, FutureExt};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default lease of a claimed run (`[server] lease_s`).
pub const DEFAULT_LEASE_S: u64 = 30;
/// A run taken over this many times without finishing is `failed` (a step that kills every
/// process that runs it is not retried forever; the same limit as a SQLite restart's).
pub const MAX_ATTEMPTS: u32 = 5;
/// Timeout of one Redis command (and of one connection attempt).
const TIMEOUT: Duration = Duration::from_secs(3);
/// Journal key prefix.
const J: &str = "fs:{j}:";
/// The journal op of a run journaled finished (`id`, `endpoint`, the record's JSON text): a
/// string `fs:{j}:run:ID` and an entry of its endpoint's history stream, written as plain
/// commands by the journal writer (src/state/redis_writer.rs), not by [`APPLY`].
const FINISHED: &str = "R";
/// Runs moved per [`MIGRATE`] call.
const MIGRATE_CHUNK: usize = 500;
/// History entries scanned per purge script call (Redis serves other clients between calls).
const PURGE_SCAN: usize = 500;
/// Shared store key prefix.
const M: &str = "fs:m:";

/// The journal writer's script: every queued write but the runs journaled finished (run
/// creations and run events, in call order) applied by one script call of up to 64 writes
/// (docs/redis.md, "How the journal is kept in Redis"). `ARGV`: the key prefix, the lease in
/// ms, then per write its op, its number of arguments and those arguments. Each write runs
/// under `pcall` and gets its own answer: an integer (1; 0 for an event of a run that does not
/// exist) or the error text. Within one call the script remembers which runs exist (no
/// `EXISTS` again), which endpoints it added to `endpoints`, and which steps already have an
/// order and a kind.
const APPLY: &str = r#"
local p, lease = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_at = string.format('%d', now + lease)
local live, eps, known = {}, {}, {}
local function final(s) return s == 'succeeded' or s == 'failed' or s == 'interrupted' end
-- Whether `delays` exists (read once per call): a final status removes its run from it only
-- then (ZREM on a missing key changes nothing).
local delayed = nil
local function delays()
  if delayed == nil then delayed = redis.call('EXISTS', p .. 'delays') == 1 end
  return delayed
end
local function exists(id, k)
  if live[id] then return true end
  if redis.call('EXISTS', k) == 1 then live[id] = true; return true end
  return false
end
-- Gives step s of run id an order (a new step) and its kind (when given, or when it has none)
-- by appending fields to f; true when the step was in the record already. The caller stores f
-- with one HSET, then calls seen(id, s): later writes of the batch skip the HMGET.
local function step(id, s, k, kind, f)
  if known[id] and known[id][s] then
    if kind ~= '' then f[#f + 1] = 'k:' .. s; f[#f + 1] = kind end
    return true
  end
  local r = redis.call('HMGET', k, 'o:' .. s, 'k:' .. s)
  if not r[1] then
    f[#f + 1] = 'o:' .. s; f[#f + 1] = redis.call('HINCRBY', k, 'nsteps', 1)
  end
  if kind ~= '' or not r[2] then f[#f + 1] = 'k:' .. s; f[#f + 1] = kind end
  return r[1] and true or false
end
local function seen(id, s)
  if not known[id] then known[id] = {} end
  known[id][s] = true
end
local ops = {}
-- C id endpoint owned n field value …: a new run that is not finished (the answer path's
-- write): a hash of those fields, leased by the writing process (owned 1) or queued unowned
-- (0), filed in its endpoint's history stream `log:NAME` (an entry `r id`: the listings, their
-- cursors, retention; counted in `count:NAME`). A run id that exists already keeps its entry.
-- (A run journaled finished is a string written by plain commands: FINISHED in
-- src/state/redis.rs.)
ops.C = function(i)
  local id, ep, o, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local k = p .. 'run:' .. id
  local old = redis.call('DEL', k) == 1
  redis.call('HSET', k, unpack(ARGV, i + 4, i + 3 + 2 * n))
  redis.call('ZADD', p .. 'leases', o == '1' and lease_at or 0, id)
  if not old then
    redis.call('XADD', p .. 'log:' .. ep, '*', 'r', id)
    redis.call('INCR', p .. 'count:' .. ep)
  end
  if not eps[ep] then redis.call('SADD', p .. 'endpoints', ep); eps[ep] = true end
  known[id] = nil
  return 1
end
-- S id status at error has_error: the run's status.
local function status(id, st, at, err, has)
  local k = p .. 'run:' .. id
  if not exists(id, k) then return 0 end
  if final(st) then
    if has == '1' then
      redis.call('HSET', k, 'status', st, 'finished', at, 'error', err)
    else
      redis.call('HSET', k, 'status', st, 'finished', at)
      redis.call('HDEL', k, 'error')
    end
    redis.call('ZREM', p .. 'leases', id)
    if delays() then redis.call('ZREM', p .. 'delays', id) end
  else
    if has == '1' then
      redis.call('HSET', k, 'status', st, 'error', err)
    else
      redis.call('HSET', k, 'status', st)
    end
    if st == 'running' then redis.call('HSETNX', k, 'started', at) end
  end
  return 1
end
ops.S = function(i) return status(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]) end
-- b id step kind at: a step started (again).
ops.b = function(i)
  local id, s = ARGV[i], ARGV[i + 1]
  local k = p .. 'run:' .. id
  if not exists(id, k) then return 0 end
  local f = {'t:' .. s, 'running', 'b:' .. s, ARGV[i + 3]}
  local old = step(id, s, k, ARGV[i + 2], f)
  redis.call('HSET', k, unpack(f))
  seen(id, s)
  if old then redis.call('HDEL', k, 'f:' .. s, 'e:' .. s, 'c:' .. s) end
  return 1
end
-- w id step kind due: a step waits for its delay.
ops.w = function(i)
  local id, s, due = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local k = p .. 'run:' .. id
  if not exists(id, k) then return 0 end
  local f = {'t:' .. s, 'waiting', 'd:' .. s, due}
  step(id, s, k, ARGV[i + 2], f)
  redis.call('HSET', k, unpack(f))
  seen(id, s)
  local cur = redis.call('ZSCORE', p .. 'delays', id)
  if not cur or tonumber(cur) > tonumber(due) then
    redis.call('ZADD', p .. 'delays', due, id)
    delayed = true
  end
  return 1
end
-- s id step at checkpoint / f id step at error: a step finished.
local function done(i, st, field)
  local id, s = ARGV[i], ARGV[i + 1]
  local k = p .. 'run:' .. id
  if not exists(id, k) then return 0 end
  local f = {'t:' .. s, st, 'f:' .. s, ARGV[i + 2], field .. s, ARGV[i + 3]}
  step(id, s, k, '', f)
  redis.call('HSET', k, unpack(f))
  seen(id, s)
  return 1
end
ops.s = function(i) return done(i, 'succeeded', 'c:') end
ops.f = function(i) return done(i, 'failed', 'e:') end
-- d id step kind started at status payload: a step started and finished (b, then s or f, of a
-- run's events written together): the same fields, one HSET.
local function step_run(id, s, kind, began, at, st, detail)
  local k = p .. 'run:' .. id
  if not exists(id, k) then return 0 end
  local field, other = 'c:', 'e:'
  if st == 'failed' then field, other = 'e:', 'c:' end
  local f = {'t:' .. s, st, 'b:' .. s, began, 'f:' .. s, at, field .. s, detail}
  local old = step(id, s, k, kind, f)
  redis.call('HSET', k, unpack(f))
  seen(id, s)
  if old then redis.call('HDEL', k, other .. s) end
  return 1
end
ops.d = function(i)
  return step_run(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5],
    ARGV[i + 6])
end
-- T id status at error has_error started: S, with the start time of a `running` written
-- together with it (kept only if the run has none, as that `running` would have).
ops.T = function(i)
  local r = ops.S(i)
  if r == 1 then redis.call('HSETNX', p .. 'run:' .. ARGV[i], 'started', ARGV[i + 5]) end
  return r
end
-- M count (op n args…)…: several writes of one run as one (record_all): applied in order; 0
-- when one of them found no run.
ops.M = function(i)
  local r, j = 1, i + 1
  for _ = 1, tonumber(ARGV[i]) do
    local fn = ops[ARGV[j]]
    if not fn or ARGV[j] == 'M' then error('unknown journal op ' .. tostring(ARGV[j])) end
    if fn(j + 2) == 0 then r = 0 end
    j = j + 2 + tonumber(ARGV[j + 1])
  end
  return r
end
-- F id started has_error status at error nsteps np (field value)…: the end of a run whose steps
-- were all journaled in this write (the runner's one write of a `store`-only run: each step's
-- start and end, each step once, then the final status). The fields are, per step, `t:` `b:`
-- `f:` `c:`|`e:` `k:` `o:` (in that order), then `nsteps` (with steps), `status`, `finished`
-- and `error` (with an error): what the d ops and the final status (T when `started` is given,
-- else S) leave on a run that has no step yet. Such a run (`nsteps` 0) gets them with one HSET;
-- any other (taken over, with steps) gets those d ops and that status applied in turn.
ops.F = function(i)
  local id, started, has, np = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 7])
  local k = p .. 'run:' .. id
  local r = redis.call('HMGET', k, 'nsteps', 'started', 'error', 'endpoint')
  if (r[1] and r[1] ~= '0') or not r[4] then
    local res, j = 1, i + 8
    for _ = 1, tonumber(ARGV[i + 6]) do
      local s = string.sub(ARGV[j], 3)
      if step_run(id, s, ARGV[j + 9], ARGV[j + 3], ARGV[j + 5], ARGV[j + 1], ARGV[j + 7]) == 0 then
        res = 0
      end
      j = j + 12
    end
    local st = status(id, ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], has)
    if st == 1 and started ~= '' then redis.call('HSETNX', k, 'started', started) end
    if st == 0 then res = 0 end
    return res
  end
  if started ~= '' and not r[2] then
    redis.call('HSET', k, 'started', started, unpack(ARGV, i + 8, i + 7 + np))
  else
    redis.call('HSET', k, unpack(ARGV, i + 8, i + 7 + np))
  end
  if has ~= '1' and r[3] then redis.call('HDEL', k, 'error') end
  redis.call('ZREM', p .. 'leases', id)
  if delays() then redis.call('ZREM', p .. 'delays', id) end
  return 1
end
local out = {}
local i = 3
while i <= #ARGV do
  local op, n = ARGV[i], tonumber(ARGV[i + 1])
  local fn = ops[op]
  local ok, r = false, 'unknown journal op ' .. tostring(op)
  if fn then ok, r = pcall(fn, i + 2) end
  if not ok then
    if type(r) == 'table' then r = r.err end
    r = tostring(r)
  end
  out[#out + 1] = r
  i = i + 2 + n
end
return out
"#;

const CLAIM: &str = r#"
local p, owner, limit, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', p .. 'leases', ARGV[6], now, 'WITHSCORES', 'LIMIT', 0, limit)
local out = {}
for i = 1, #ids, 2 do
  local id, score = ids[i], tonumber(ids[i + 1])
  local k = p .. 'run:' .. id
  local st = redis.call('HGET', k, 'status')
  if not st or st == 'succeeded' or st == 'failed' or st == 'interrupted' then
    redis.call('ZREM', p .. 'leases', id)
  elseif redis.call('HGET', k, 'resumable') == '0' then
    redis.call('HSET', k, 'status', 'interrupted', 'finished', now,
      'error', 'interrupted: the server stopped during the run')
    redis.call('ZREM', p .. 'leases', id)
    redis.call('ZREM', p .. 'delays', id)
  elseif score > 0 and redis.call('HINCRBY', k, 'attempt', 1) > tonumber(ARGV[5]) then
    redis.call('HSET', k, 'status', 'failed', 'finished', now,
      'error', 'gave up after ' .. ARGV[5] .. ' attempts without finishing')
    redis.call('ZREM', p .. 'leases', id)
    redis.call('ZREM', p .. 'delays', id)
  else
    redis.call('HSET', k, 'owner', owner)
    redis.call('ZADD', p .. 'leases', now + lease, id)
    table.insert(out, id)
  end
end
return out
"#;

const RENEW: &str = r#"
local p, owner, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', p .. 'run:' .. id, 'owner') == owner
     and redis.call('ZSCORE', p .. 'leases', id) then
    redis.call('ZADD', p .. 'leases', now + lease, id)
  else
    table.insert(lost, id)
  end
end
return lost
"#;

/// A finished run queued again (`retry`): `ARGV` the key prefix, the run id, the status the
/// caller read (a hash run must still have it; a run journaled finished, a string, never
/// changes), then the number of fields and the fields of the requeued record. The run keeps
/// its history entries (its place in the listings). 0 when the run changed or is gone.
const RETRY: &str = r#"
local p, id, expect = ARGV[1], ARGV[2], ARGV[3]
local k = p .. 'run:' .. id
local t = redis.call('TYPE', k).ok
if t == 'hash' then
  if redis.call('HGET', k, 'status') ~= expect then return 0 end
elseif t ~= 'string' then
  return 0
end
redis.call('DEL', k)
local n = tonumber(ARGV[4])
redis.call('HSET', k, unpack(ARGV, 5, 4 + 2 * n))
redis.call('ZADD', p .. 'leases', 0, id)
return 1
"#;

/// Shared by the purge scripts: `times(k)` is the acceptance time of run key `k` and its
/// finish time when the run is finished (a string — journaled finished — or a hash with a final
/// status; `false` when it is not), or nothing when the key is gone.
const TIMES: &str = r#"
local function times(k)
  local t = redis.call('TYPE', k).ok
  if t == 'string' then
    -- The record's own `created` and `finished` come before its data and steps in the text.
    local v = redis.call('GET', k)
    return tonumber(string.match(v, '"created":(%d+)') or 0),
      tonumber(string.match(v, '"finished":(%d+)') or 0)
  elseif t == 'hash' then
    local r = redis.call('HMGET', k, 'created', 'status', 'finished')
    local c = tonumber(r[1] or 0)
    if r[2] == 'succeeded' or r[2] == 'failed' or r[2] == 'interrupted' then
      return c, tonumber(r[3] or 0)
    end
    return c, false
  end
  return nil
end
-- Sweeps entry e (`{id, fields}`) of stream l, whose runs' keys start with prefix p: deletes
-- each run that doom(created, finished) condemns (taking it off count key c), then the entry if
-- none of its runs is left (runs already gone are not counted). Answers the runs deleted, and
-- 1 when the entry was (else 0).
local function sweep(p, l, c, e, doom)
  local f, purged, left = e[2], 0, 0
  for i = 2, #f, 2 do
    local k = p .. 'run:' .. f[i]
    local created, finished = times(k)
    if created and doom(created, finished) then
      redis.call('DEL', k)
      redis.call('DECR', c)
      purged = purged + 1
    elseif created then
      left = left + 1
    end
  end
  if left > 0 then return purged, 0 end
  redis.call('XDEL', l, e[1])
  return purged, 1
end
"#;

/// Purges an endpoint's finished runs older than a cutoff (retention by age): `ARGV` the key
/// prefix, the endpoint, the cutoff (ms), the entry id to scan after (`-` at first), the most
/// entries to scan. Scans `log:NAME` in acceptance order and deletes each finished run whose
/// finish time is before the cutoff (taking it off `count:NAME`); an entry is deleted once none
/// of its runs is left. Unfinished runs are kept. It stops after the entry of the first run
/// accepted at or after the cutoff (no run behind it finished before the cutoff, unless the
/// clocks of the processes that accepted them disagree: such a run waits for a later purge).
/// Answers `{purged, scanned, last entry id, stopped (1 or 0)}`.
const PURGE_AGE: &str = r#"
local p, ep, cutoff, after, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local l, c = p .. 'log:' .. ep, p .. 'count:' .. ep
local start = after == '-' and '-' or '(' .. after
local es = redis.call('XRANGE', l, start, '+', 'COUNT', limit)
local purged, last, stop = 0, after, false
local function doom(created, finished)
  if created >= cutoff then
    stop = true
    return false
  end
  return finished and finished < cutoff
end
for _, e in ipairs(es) do
  purged = purged + sweep(p, l, c, e, doom)
  last = e[1]
  if stop then return {purged, #es, last, 1} end
end
return {purged, #es, last, 0}
"#;

/// Purges an endpoint's oldest finished runs beyond the newest `max` (retention by count):
/// `ARGV` the key prefix, the endpoint, `max`, the most entries to scan. Its finished runs are
/// the runs its history holds (`count:NAME`) less its unfinished runs (all in `leases`); from
/// the oldest entry, finished runs are deleted (and taken off the count) until `max` are left;
/// an entry is deleted once none of its runs is left (entries naming runs that are gone are
/// skipped, and deleted when nothing else is left in them). Answers `{runs purged, runs and
/// entries deleted, excess left}`.
const PURGE_COUNT: &str = r#"
local p, ep, max, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local l, c = p .. 'log:' .. ep, p .. 'count:' .. ep
local excess = tonumber(redis.call('GET', c) or redis.call('XLEN', l)) - max
if excess <= 0 then return {0, 0, 0} end
for _, id in ipairs(redis.call('ZRANGE', p .. 'leases', 0, -1)) do
  if redis.call('HGET', p .. 'run:' .. id, 'endpoint') == ep then excess = excess - 1 end
end
if excess <= 0 then return {0, 0, 0} end
local purged, removed = 0, 0
local function doom(_, finished)
  if finished == false or excess <= 0 then return false end
  excess = excess - 1
  return true
end
local es = redis.call('XRANGE', l, '-', '+', 'COUNT', limit)
for _, e in ipairs(es) do
  if excess <= 0 then break end
  local n, dropped = sweep(p, l, c, e, doom)
  purged = purged + n
  removed = removed + n + dropped
end
return {purged, removed, excess}
"#;

/// Reads runs (`get_run`, the listings): `ARGV` the key prefix, `full` or `summary`, run ids.
/// Answers per run its JSON text (a run journaled finished), its hash (`full`: every field, as
/// name/value pairs) or its summary fields (`summary`: `endpoint`, `status`, `created`,
/// `started`, `finished`, `error`), or an empty list when it is gone.
const READ: &str = r#"
local p, full = ARGV[1], ARGV[2] == 'full'
local out = {}
for i = 3, #ARGV do
  local k = p .. 'run:' .. ARGV[i]
  local t = redis.call('TYPE', k).ok
  if t == 'string' then
    out[#out + 1] = redis.call('GET', k)
  elseif t == 'hash' and full then
    out[#out + 1] = redis.call('HGETALL', k)
  elseif t == 'hash' then
    out[#out + 1] = redis.call('HMGET', k, 'endpoint', 'status', 'created', 'started',
      'finished', 'error')
  else
    out[#out + 1] = {}
  end
end
return out
"#;

/// Moves a journal of the layout of earlier versions (run ids in the sorted sets `all` and
/// `ep:NAME` by a `seq` number; `finished` and `done:NAME` for retention) to the history
/// streams, up to `ARGV[2]` runs per call in `seq` order: each run gets the entry `0-SEQ` in
/// `log:NAME` (before any entry of this version's, which are Redis's clock), or a new entry if
/// this version already wrote some. When `all` is empty the old sorted sets and the counter are
/// deleted. First, an endpoint's stream written before streams were counted (its entries name
/// one run each) gets its `count:NAME` from its length. Answers the number of runs left to
/// move.
const MIGRATE: &str = r#"
local p, limit = ARGV[1], tonumber(ARGV[2])
for _, ep in ipairs(redis.call('SMEMBERS', p .. 'endpoints')) do
  -- A key of another type under an endpoint's name is left to fail that endpoint's own calls.
  local ok, n = pcall(redis.call, 'XLEN', p .. 'log:' .. ep)
  if ok then redis.call('SET', p .. 'count:' .. ep, n, 'NX') end
end
local ids = redis.call('ZRANGE', p .. 'all', 0, limit - 1, 'WITHSCORES')
for i = 1, #ids, 2 do
  local id, seq = ids[i], ids[i + 1]
  local ep = redis.call('HGET', p .. 'run:' .. id, 'endpoint')
  if ep then
    local l = p .. 'log:' .. ep
    if not pcall(redis.call, 'XADD', l, '0-' .. seq, 'r', id) then
      redis.call('XADD', l, '*', 'r', id)
    end
    redis.call('INCR', p .. 'count:' .. ep)
    redis.call('SADD', p .. 'endpoints', ep)
  end
  redis.call('ZREM', p .. 'all', id)
end
local left = redis.call('ZCARD', p .. 'all')
if left == 0 then
  for _, ep in ipairs(redis.call('SMEMBERS', p .. 'endpoints')) do
    redis.call('DEL', p .. 'ep:' .. ep, p .. 'done:' .. ep)
  end
  redis.call('DEL', p .. 'finished', p .. 'seq')
end
return left
"#;

struct Scripts {
    claim: Script,
    renew: Script,
    retry: Script,
    purge_age: Script,
    purge_count: Script,
    read: Script,
    migrate: Script,
}

/// One journal write waiting for the writer task: an op of [`APPLY`] and its arguments.
struct Job {
    op: &'static str,
    args: Args,
    done: tokio::sync::oneshot::Sender<StateResult<i64>>,
}

/// The arguments of one journal write, one after the other in one buffer: written on the
/// caller's thread with one allocation or two (not one `String` per argument, each freed
/// again by the writer's thread), numbers formatted by `itoa`, a step's field name (`t:ID`)
/// written in place.
#[derive(Debug, Default)]
struct Args {
    buf: Vec<u8>,
    /// Where each argument ends in `buf`.
    ends: Vec<usize>,
}

impl Args {
    fn with_capacity(args: usize, bytes: usize) -> Args {
        Args {
            buf: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(args),
        }
    }

    fn push(&mut self, a: impl AsRef<[u8]>) {
        self.buf.extend_from_slice(a.as_ref());
        self.ends.push(self.buf.len());
    }

    fn int(&mut self, n: impl itoa::Integer) {
        self.push(itoa::Buffer::new().format(n));
    }

    /// A step's field name: `prefix` (`t:`, …) and the step's id.
    fn field(&mut self, prefix: &str, step: &str) {
        self.buf.extend_from_slice(prefix.as_bytes());
        self.push(step);
    }

    /// `v`'s JSON text (serde_json's compact form); `or` if it cannot be written.
    fn json(&mut self, v: &impl serde::Serialize, or: &[u8]) {
        let at = self.buf.len();
        if serde_json::to_writer(&mut self.buf, v).is_err() {
            self.buf.truncate(at);
            self.buf.extend_from_slice(or);
        }
        self.ends.push(self.buf.len());
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// The arguments in order.
    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let a = &self.buf[start..end];
            start = end;
            a
        })
    }
}

impl From<Vec<String>> for Args {
    fn from(v: Vec<String>) -> Args {
        let mut a = Args::with_capacity(v.len(), v.iter().map(String::len).sum());
        for s in v {
            a.push(s);
        }
        a
    }
}

struct Inner {
    conn: ConnectionManager,
    /// Journal writes, in call order, to the writer task (group commit).
    writes: tokio::sync::mpsc::UnboundedSender<Job>,
    scripts: Scripts,
    /// The lease of a claimed run, in milliseconds.
    lease_ms: u64,
    /// Unfinished runs this process owns, per owner id: their leases are renewed.
    owned: Mutex<HashMap<String, HashSet<String>>>,
    /// Whether [`Inner::migrate`] found (or left) the journal in this version's layout.
    migrated: std::sync::atomic::AtomicBool,
}

/// The Redis backend.
pub struct RedisBackend {
    inner: Arc<Inner>,
    /// The runtime every Redis operation runs on (shut down in the background on drop).
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    describe: String,
}

fn unavailable(e: redis::RedisError) -> StateError {
    StateError::Unavailable(format!("redis: {}", e.kind_description()))
}

trait KindDescription {
    fn kind_description(&self) -> String;
}

impl KindDescription for redis::RedisError {
    /// The error without any part of the URL (it may hold a password).
    fn kind_description(&self) -> String {
        if self.is_timeout() {
            "timed out".into()
        } else if self.is_connection_refusal() {
            "connection refused".into()
        } else if self.is_connection_dropped() || self.is_io_error() {
            "connection lost".into()
        } else {
            let mut s = self.to_string();
            s.truncate(200);
            s
        }
    }
}

/// `redis://user:***@host:port/db`: the URL without its password.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((cred, host)) => {
                let user = cred.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl RedisBackend {
    /// Opens the backend on `url` with leases of `lease_s` seconds. Connects lazily: a Redis
    /// that is down now makes operations fail with [`StateError::Unavailable`] until it is
    /// back (the connection is retried with backoff on the next operations).
    pub fn open(url: &str, lease_s: u64) -> Result<RedisBackend, String> {
        Self::open_with_ca(url, lease_s, None)
    }

    /// [`RedisBackend::open`]; for a `rediss://` URL, `ca` (PEM certificates) replaces the
    /// built-in roots (a private CA, `[server] redis_ca`). With a `redis://` URL it is an error.
    pub fn open_with_ca(
        url: &str,
        lease_s: u64,
        ca: Option<&[u8]>,
    ) -> Result<RedisBackend, String> {
        let describe = redact(url);
        let bad_url =
            |e: redis::RedisError| format!("bad Redis URL `{describe}`: {}", e.kind_description());
        // TCP_NODELAY: a batch written while the one before it is not acknowledged yet (the
        // journal writer keeps two in flight) must not wait for that acknowledgement (Nagle's
        // algorithm, on by default in the client; Redis sets it on its side). No difference
        // measured on loopback; across a network it saves a round trip.
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(bad_url)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = match ca {
            None => redis::Client::open(info),
            Some(_) if !url.starts_with("rediss://") => {
                return Err(format!(
                    "redis_ca is set but `{describe}` is not a rediss:// (TLS) URL"
                ))
            }
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
        }
        .map_err(bad_url)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("flexscript-redis")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the Redis runtime: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let conn = {
            let _guard = rt.enter();
            ConnectionManager::new_lazy_with_config(client.clone(), config)
                .map_err(|e| format!("cannot use Redis `{describe}`: {}", e.kind_description()))?
        };
        let (writes, queue) = tokio::sync::mpsc::unbounded_channel();
        let lease_ms = lease_s.max(1) * 1000;
        // The journal writer runs on the runtime that opens the backend when that is a
        // multi-thread runtime (the server's): the requests' tasks, the writer and its
        // connection then share the server's threads, with no hand-over to another thread and
        // back per write (2–3 µs of CPU per run, docs/redis.md "Session 15"). Anywhere else
        // (the CLI, a current-thread runtime, no runtime) it runs on the backend's own.
        let write = writer::run(client.clone(), queue, lease_ms);
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                h.spawn(write);
            }
            _ => {
                rt.spawn(write);
            }
        }
        let inner = Arc::new(Inner {
            conn,
            writes,
            scripts: Scripts {
                claim: Script::new(CLAIM),
                renew: Script::new(RENEW),
                retry: Script::new(RETRY),
                purge_age: Script::new(&format!("{TIMES}{PURGE_AGE}")),
                purge_count: Script::new(&format!("{TIMES}{PURGE_COUNT}")),
                read: Script::new(READ),
                migrate: Script::new(MIGRATE),
            },
            lease_ms,
            owned: Mutex::new(HashMap::new()),
            migrated: std::sync::atomic::AtomicBool::new(false),
        });
        let handle = rt.handle().clone();
        handle.spawn(renew_loop(Arc::downgrade(&inner)));
        Ok(RedisBackend {
            inner,
            rt: Some(rt),
            handle,
            describe,
        })
    }

    /// Runs `f` on the Redis runtime; the future can be awaited from any runtime.
    fn spawn<T, F, Fut>(&self, f: F) -> BoxFuture<'static, StateResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = StateResult<T>> + Send + 'static,
    {
        let task = self.handle.spawn(f(self.inner.clone()));
        async move {
            task.await
                .unwrap_or_else(|_| Err(StateError::Unavailable("redis task stopped".into())))
        }
        .boxed()
    }

    /// Queues the creation of `run` (the `C` op of [`APPLY`]); `rec` writes its `rec` field,
    /// `whole` the whole record's text (a run journaled finished is that one string).
    fn create(
        &self,
        run: RunRecord,
        rec: impl FnOnce(&RunRecord, &mut Args),
        whole: impl FnOnce(&RunRecord, &mut Args),
    ) -> BoxFuture<'static, StateResult<()>> {
        let (op, args) = if run.status.is_final() {
            // Journaled finished (a request's run whose steps all ran before): its record's
            // text, one string, written by plain commands (src/state/redis_writer.rs).
            let mut args = Args::with_capacity(3, 1536);
            args.push(&run.id);
            args.push(&run.endpoint);
            whole(&run, &mut args);
            (FINISHED, args)
        } else {
            let n = field_count(&run);
            let mut args = Args::with_capacity(4 + 2 * n, 1024);
            args.push(&run.id);
            args.push(&run.endpoint);
            args.push(if run.owner.is_some() { "1" } else { "0" });
            args.int(n);
            fields(&run, &mut args, |a| rec(&run, a));
            debug_assert_eq!(args.len(), 4 + 2 * n);
            ("C", args)
        };
        // Queued now, so the run's later events (queued after this call) follow it.
        let write = self.inner.write(op, args);
        let inner = self.inner.clone();
        let owned = match run.owner {
            Some(owner) if !run.status.is_final() => Some((owner, run.id)),
            _ => None,
        };
        async move {
            write.await?;
            if let Some((owner, id)) = owned {
                inner.own(&owner, &id);
            }
            Ok(())
        }
        .boxed()
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Inner {
    /// Queues a journal write now (its place in the order is taken at the call) and returns
    /// its acknowledgement.
    fn write(&self, op: &'static str, args: Args) -> impl Future<Output = StateResult<i64>> {
        let (done, rx) = tokio::sync::oneshot::channel();
        let queued = self.writes.send(Job { op, args, done }).is_ok();
        async move {
            if !queued {
                return Err(StateError::Unavailable("redis writer stopped".into()));
            }
            rx.await
                .unwrap_or_else(|_| Err(StateError::Unavailable("redis writer stopped".into())))
        }
    }

    fn own(&self, owner: &str, id: &str) {
        let mut o = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        // The owner's set exists after its first run: its name is not copied again.
        match o.get_mut(owner) {
            Some(set) => set.insert(id.to_string()),
            None => o
                .entry(owner.to_string())
                .or_default()
                .insert(id.to_string()),
        };
    }

    /// A write of run `id` failed (Redis down, or refusing writes): the journal no longer
    /// holds what this process did with the run, so the process stops renewing its lease.
    /// Once Redis answers, the lease runs out and a claim (of any process, this one included)
    /// continues the run after its last journaled step (docs/redis.md, "Faults"). Renewing it
    /// instead would keep it `running` in the journal for as long as this process lives.
    fn give_up(&self, id: &str) {
        let owned = self
            .owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|set| set.contains(id));
        if owned {
            tracing::warn!(run_id = %id, "a journal write of the run failed: its lease is left to expire, and the run to be taken over");
            self.disown(id);
        }
    }

    fn disown(&self, id: &str) {
        let mut o = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        for set in o.values_mut() {
            set.remove(id);
        }
    }

    async fn get_run(&self, id: &str) -> StateResult<RunRecord> {
        let mut c = self.conn.clone();
        let read: Vec<redis::Value> = self
            .scripts
            .read
            .arg(J)
            .arg("full")
            .arg(id)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        match read.into_iter().next().map(stored) {
            Some(Stored::Text(t)) => RunRecord::from_text(&t),
            Some(Stored::Fields(f)) if !f.is_empty() => {
                let mut h = HashMap::with_capacity(f.len() / 2);
                let mut f = f.into_iter();
                while let (Some(k), Some(v)) = (f.next(), f.next()) {
                    h.insert(k.unwrap_or_default(), v.unwrap_or_default());
                }
                decode(&h)
            }
            _ => Err(StateError::NotFound),
        }
    }

    /// Moves a journal of the layout of earlier versions to the history streams ([`MIGRATE`]),
    /// once per process: before its first write (at [`Backend::recover`]), and before a
    /// listing or a purge (the CLI).
    async fn migrate(&self) -> StateResult<()> {
        if self.migrated.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let mut c = self.conn.clone();
        loop {
            let left: i64 = self
                .scripts
                .migrate
                .arg(J)
                .arg(MIGRATE_CHUNK)
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            if left == 0 {
                break;
            }
        }
        self.migrated
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Loads claimed runs; an unreadable one is marked failed (never a crash).
    async fn load_claimed(
        self: &Arc<Self>,
        owner: &str,
        ids: Vec<String>,
    ) -> StateResult<Vec<RunRecord>> {
        let mut out = Vec::new();
        for id in ids {
            match self.get_run(&id).await {
                Ok(r) => {
                    self.own(owner, &id);
                    out.push(r);
                }
                Err(StateError::Corrupt(m)) => {
                    tracing::error!(run_id = %id, error = %m, "unreadable run marked failed");
                    let _ = self
                        .record(RunEvent::Status {
                            run: id.clone(),
                            status: RunStatus::Failed,
                            at: super::now_ms(),
                            error: Some(format!("corrupt run record: {m}")),
                        })
                        .await;
                }
                Err(StateError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Claims up to `limit` runs: expired leases, and with `unowned` the owner-less queued runs
    /// (score 0) too.
    async fn claim(
        self: &Arc<Self>,
        owner: &str,
        limit: usize,
        unowned: bool,
    ) -> StateResult<Vec<RunRecord>> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = self
            .scripts
            .claim
            .arg(J)
            .arg(owner)
            .arg(limit.max(1))
            .arg(self.lease_ms)
            .arg(MAX_ATTEMPTS)
            .arg(if unowned { "-inf" } else { "(0" })
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        self.load_claimed(owner, ids).await
    }

    /// Queues `event` now; the future resolves once Redis applied it.
    fn record(self: &Arc<Self>, event: RunEvent) -> impl Future<Output = StateResult<()>> {
        let final_run = final_of(&event);
        let id = event.run().to_string();
        let (op, args) = op_of(event);
        let write = self.write(op, args.into());
        let me = self.clone();
        async move {
            let found = write.await.inspect_err(|_| me.give_up(&id))?;
            if let Some(id) = final_run {
                me.disown(&id);
            }
            if found == 0 {
                return Err(StateError::NotFound);
            }
            Ok(())
        }
    }

    /// Queues the events of one run now, folded ([`fold`]), as one write (the `M` op of
    /// [`APPLY`]: applied in one script call, so atomically). Resolves once Redis applied it.
    fn record_all(
        self: &Arc<Self>,
        events: Vec<RunEvent>,
    ) -> impl Future<Output = StateResult<()>> {
        let finals: Vec<String> = events.iter().filter_map(final_of).collect();
        // The runs written (one, from the runner), each once.
        let mut ids: Vec<String> = Vec::with_capacity(1);
        for e in &events {
            if !ids.iter().any(|id| id == e.run()) {
                ids.push(e.run().to_string());
            }
        }
        // A fresh run's end (its steps and final status): `F`, the hash fields they leave.
        let (op, args) = match fresh_end_args(&events) {
            Some(args) => ("F", args),
            None => {
                let ops = fold(events);
                let mut args = Args::with_capacity(
                    1 + ops.iter().map(|(_, a)| a.len() + 2).sum::<usize>(),
                    ops.iter()
                        .map(|(_, a)| 8 + a.iter().map(String::len).sum::<usize>())
                        .sum(),
                );
                args.int(ops.len());
                for (op, a) in ops {
                    args.push(op);
                    args.int(a.len());
                    for x in a {
                        args.push(x);
                    }
                }
                ("M", args)
            }
        };
        let write = self.write(op, args);
        let me = self.clone();
        async move {
            let found = write.await.inspect_err(|_| {
                for id in &ids {
                    me.give_up(id);
                }
            })?;
            for id in finals {
                me.disown(&id);
            }
            if found == 0 {
                return Err(StateError::NotFound);
            }
            Ok(())
        }
    }
}

/// The run whose final status `event` is.
fn final_of(event: &RunEvent) -> Option<String> {
    match event {
        RunEvent::Status { run, status, .. } if status.is_final() => Some(run.clone()),
        _ => None,
    }
}

/// The [`APPLY`] op of one event and its arguments.
fn op_of(event: RunEvent) -> (&'static str, Vec<String>) {
    match event {
        RunEvent::Status {
            run,
            status,
            at,
            error,
        } => {
            let has = if error.is_some() { "1" } else { "0" };
            let args = vec![
                run,
                status.as_str().to_string(),
                at.to_string(),
                error.unwrap_or_default(),
                has.to_string(),
            ];
            ("S", args)
        }
        RunEvent::StepStarted {
            run,
            step,
            kind,
            at,
        } => ("b", vec![run, step, kind, at.to_string()]),
        RunEvent::StepWaiting {
            run,
            step,
            kind,
            due,
        } => ("w", vec![run, step, kind, due.to_string()]),
        RunEvent::StepSucceeded {
            run,
            step,
            at,
            checkpoint,
        } => ("s", vec![run, step, at.to_string(), checkpoint.to_text()]),
        RunEvent::StepFailed {
            run,
            step,
            at,
            error,
        } => ("f", vec![run, step, at.to_string(), error]),
    }
}

/// The ops of one run's events written together, with fewer writes: a step's start followed
/// by its end becomes one `d`, a `running` followed by a final status one `T` (the final
/// status with the start time). The hash ends the same as with every event applied in turn:
/// the folded event's fields are all overwritten or kept by the later one.
fn fold(events: Vec<RunEvent>) -> Vec<(&'static str, Vec<String>)> {
    let n = events.len();
    // The index of each step's next event and of each run's next status.
    let mut next = vec![None; n];
    {
        let mut step_next: HashMap<(&str, &str), usize> = HashMap::new();
        let mut status_next: HashMap<&str, usize> = HashMap::new();
        for (i, e) in events.iter().enumerate().rev() {
            next[i] = match e {
                RunEvent::Status { run, .. } => status_next.insert(run, i),
                RunEvent::StepStarted { run, step, .. }
                | RunEvent::StepWaiting { run, step, .. }
                | RunEvent::StepSucceeded { run, step, .. }
                | RunEvent::StepFailed { run, step, .. } => step_next.insert((run, step), i),
            };
        }
    }
    let ends_step = |e: &RunEvent| {
        matches!(
            e,
            RunEvent::StepSucceeded { .. } | RunEvent::StepFailed { .. }
        )
    };
    let is_final = |e: &RunEvent| matches!(e, RunEvent::Status { status, .. } if status.is_final());
    // Which events are folded into a later one (its index).
    let mut into = vec![None; n];
    for (i, e) in events.iter().enumerate() {
        let Some(j) = next[i] else { continue };
        let fold = match e {
            RunEvent::StepStarted { .. } => ends_step(&events[j]),
            RunEvent::Status {
                status: RunStatus::Running,
                error: None,
                ..
            } => is_final(&events[j]),
            _ => false,
        };
        if fold {
            into[i] = Some(j);
        }
    }
    // What a folded event carries to the one it is folded into.
    let mut start: Vec<Option<(String, i64)>> = vec![None; n];
    let mut began: Vec<Option<i64>> = vec![None; n];
    let mut out = Vec::with_capacity(n);
    for (i, e) in events.into_iter().enumerate() {
        if let Some(j) = into[i] {
            match e {
                RunEvent::StepStarted { kind, at, .. } => start[j] = Some((kind, at)),
                RunEvent::Status { at, .. } => began[j] = Some(began[i].unwrap_or(at)),
                _ => {}
            }
            continue;
        }
        match (e, start[i].take(), began[i]) {
            (
                RunEvent::StepSucceeded {
                    run,
                    step,
                    at,
                    checkpoint,
                },
                Some((kind, b)),
                _,
            ) => out.push(step_done(
                run,
                step,
                kind,
                b,
                at,
                "succeeded",
                checkpoint.to_text(),
            )),
            (
                RunEvent::StepFailed {
                    run,
                    step,
                    at,
                    error,
                },
                Some((kind, b)),
                _,
            ) => out.push(step_done(run, step, kind, b, at, "failed", error)),
            (e @ RunEvent::Status { .. }, _, Some(b)) => {
                let (_, mut args) = op_of(e);
                args.push(b.to_string());
                out.push(("T", args));
            }
            (e, _, _) => out.push(op_of(e)),
        }
    }
    out
}

/// The `d` op of [`APPLY`]: a step started at `began` and ended at `at` with `status`, its
/// checkpoint or error in `detail`.
fn step_done(
    run: String,
    step: String,
    kind: String,
    began: i64,
    at: i64,
    status: &str,
    detail: String,
) -> (&'static str, Vec<String>) {
    let args = vec![
        run,
        step,
        kind,
        began.to_string(),
        at.to_string(),
        status.to_string(),
        detail,
    ];
    ("d", args)
}

/// The head of the `F` op of [`APPLY`] for folded `ops` that end a run whose steps are all in
/// them (`d` ops of distinct steps, then a final status, as the runner writes a `store`-only
/// run): the run's id, the start time to keep if it has none (`""`: none), whether the status
/// carries an error, the status, its time, its error, the number of steps, then the hash fields
/// the ops leave on a run without steps (their count first; per step `t:` `b:` `f:` `c:`|`e:`
/// `k:` `o:`, the order the script's fallback reads them in). `None` for any other shape
/// (written as an `M`). The writer uses [`fresh_end_args`], which writes the same arguments
/// straight from the events; this is the tests' reference.
#[cfg(test)]
fn fresh_end(ops: &[(&'static str, Vec<String>)]) -> Option<Vec<String>> {
    let ((last, end), steps) = ops.split_last()?;
    // T/S: run status at error has_error [started].
    let status = RunStatus::parse(end.get(1)?)?;
    if !matches!(*last, "T" | "S") || !status.is_final() || end.len() < 5 {
        return None;
    }
    let run = &end[0];
    let mut pairs = Vec::with_capacity(12 * steps.len() + 8);
    let mut ids = HashSet::new();
    for (i, (op, a)) in steps.iter().enumerate() {
        // d: run step kind started at status detail.
        let [r, step, kind, began, at, st, detail] = a.as_slice() else {
            return None;
        };
        if *op != "d" || r != run || !ids.insert(step.as_str()) {
            return None;
        }
        let field = if st == "failed" { "e" } else { "c" };
        for (f, v) in [
            ("t", st),
            ("b", began),
            ("f", at),
            (field, detail),
            ("k", kind),
            ("o", &(i + 1).to_string()),
        ] {
            pairs.push(format!("{f}:{step}"));
            pairs.push(v.clone());
        }
    }
    if !steps.is_empty() {
        pairs.push("nsteps".into());
        pairs.push(steps.len().to_string());
    }
    let has_error = end[4] == "1";
    pairs.push("status".into());
    pairs.push(end[1].clone());
    pairs.push("finished".into());
    pairs.push(end[2].clone());
    if has_error {
        pairs.push("error".into());
        pairs.push(end[3].clone());
    }
    let started = if *last == "T" {
        end.get(5)?.clone()
    } else {
        String::new()
    };
    let mut head = Vec::with_capacity(8 + pairs.len());
    head.extend([
        run.clone(),
        started,
        end[4].clone(),
        end[1].clone(),
        end[2].clone(),
        end[3].clone(),
        steps.len().to_string(),
        pairs.len().to_string(),
    ]);
    head.extend(pairs);
    Some(head)
}

/// The arguments of the `F` op for `events` of one run, written straight from the events:
/// exactly [`fresh_end`] of their [`fold`] (`fresh_end_args_are_fresh_end_of_fold` in
/// src/state/redis_tests.rs compares the two over generated event lists), without the folded
/// ops, a `String` per argument or a `format!` per field name. `Some` for the same shape: the
/// final status last; before it at most one `running` without error, and steps each started
/// once and then ended (succeeded or failed) once, nothing else, all of that run.
fn fresh_end_args(events: &[RunEvent]) -> Option<Args> {
    let (
        RunEvent::Status {
            run,
            status,
            at: end_at,
            error,
        },
        rest,
    ) = events.split_last()?
    else {
        return None;
    };
    if !status.is_final() {
        return None;
    }
    // The folded `running`'s time; the steps begun and not ended yet (id, kind, start); the
    // ended ones in the order of their ends (the `d` ops' order), with their end event.
    let mut began = None;
    let mut open: Vec<(&str, &str, i64)> = Vec::new();
    let mut done: Vec<(&str, &str, i64, &RunEvent)> = Vec::with_capacity(rest.len() / 2);
    for e in rest {
        if e.run() != run {
            return None;
        }
        match e {
            RunEvent::Status {
                status: RunStatus::Running,
                error: None,
                at,
                ..
            } if began.is_none() => began = Some(*at),
            RunEvent::StepStarted { step, kind, at, .. } => {
                if open.iter().any(|o| o.0 == step) || done.iter().any(|d| d.0 == step) {
                    return None;
                }
                open.push((step, kind, *at));
            }
            RunEvent::StepSucceeded { step, .. } | RunEvent::StepFailed { step, .. } => {
                let i = open.iter().position(|o| o.0 == step)?;
                let (step, kind, b) = open.remove(i);
                done.push((step, kind, b, e));
            }
            _ => return None,
        }
    }
    if !open.is_empty() {
        return None;
    }
    let n = done.len();
    let pairs = 12 * n + if n > 0 { 2 } else { 0 } + 4 + if error.is_some() { 2 } else { 0 };
    let bytes = 96
        + run.len()
        + error.as_deref().map_or(0, str::len)
        + done
            .iter()
            .map(|d| 96 + 6 * d.0.len() + d.1.len())
            .sum::<usize>();
    let mut a = Args::with_capacity(8 + pairs, bytes);
    let has = if error.is_some() { "1" } else { "0" };
    a.push(run);
    match began {
        Some(b) => a.int(b),
        None => a.push(""),
    }
    a.push(has);
    a.push(status.as_str());
    a.int(*end_at);
    a.push(error.as_deref().unwrap_or_default());
    a.int(n);
    a.int(pairs);
    for (i, (step, kind, b, end)) in done.into_iter().enumerate() {
        let (st, at, field) = match end {
            RunEvent::StepFailed { at, .. } => ("failed", at, "e:"),
            RunEvent::StepSucceeded { at, .. } => ("succeeded", at, "c:"),
            _ => unreachable!("only step ends are in `done`"),
        };
        a.field("t:", step);
        a.push(st);
        a.field("b:", step);
        a.int(b);
        a.field("f:", step);
        a.int(*at);
        a.field(field, step);
        match end {
            RunEvent::StepFailed { error, .. } => a.push(error),
            // `Checkpoint::to_text`'s text, written in place.
            RunEvent::StepSucceeded { checkpoint, .. } => a.json(checkpoint, b"{}"),
            _ => unreachable!("only step ends are in `done`"),
        }
        a.field("k:", step);
        a.push(kind);
        a.field("o:", step);
        a.int(i + 1);
    }
    if n > 0 {
        a.push("nsteps");
        a.int(n);
    }
    a.push("status");
    a.push(status.as_str());
    a.push("finished");
    a.int(*end_at);
    if let Some(e) = error {
        a.push("error");
        a.push(e);
    }
    debug_assert_eq!(a.len(), 8 + pairs);
    Some(a)
}

/// A run as [`READ`] answers it.
enum Stored {
    /// A run journaled finished: its record's JSON text.
    Text(String),
    /// A hash run's fields (`full`: name/value pairs; `summary`: the summary fields in
    /// order); empty when the run is gone.
    Fields(Vec<Option<String>>),
}

fn text(v: redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        redis::Value::SimpleString(s) => Some(s),
        redis::Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn stored(v: redis::Value) -> Stored {
    match v {
        redis::Value::Array(items) => Stored::Fields(items.into_iter().map(text).collect()),
        v => match text(v) {
            Some(t) => Stored::Text(t),
            None => Stored::Fields(Vec::new()),
        },
    }
}

/// An `XREVRANGE` answer of a history stream: the number of entries read, the last entry's id,
/// and its runs newest first — (entry id, run id) per run id of each entry (fields `r`), the
/// ids of one entry from the greatest (the listing's order, [`Cursor`]).
fn entries(v: redis::Value) -> (usize, Option<String>, Vec<(String, String)>) {
    let redis::Value::Array(es) = v else {
        return (0, None, Vec::new());
    };
    let (read, mut last) = (es.len(), None);
    let mut out = Vec::with_capacity(es.len());
    for e in es {
        let redis::Value::Array(e) = e else {
            continue;
        };
        let mut e = e.into_iter();
        let Some(x) = e.next().and_then(text) else {
            continue;
        };
        last = Some(x.clone());
        let Some(redis::Value::Array(f)) = e.next() else {
            continue;
        };
        let first = out.len();
        out.extend(
            f.into_iter()
                .skip(1)
                .step_by(2)
                .filter_map(text)
                .map(|id| (x.clone(), id)),
        );
        out[first..].sort_unstable_by(|a, b| b.1.cmp(&a.1));
    }
    (read, last, out)
}

/// A history stream entry's id, `MS-SEQ`, as numbers (their order is the streams' order).
fn entry_id(x: &str) -> Option<(u64, u64)> {
    let (ms, seq) = x.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// A listing's cursor: the first run not listed yet, `MS-SEQ:RUN:NAME` — its entry id, run id
/// and endpoint. The listing's order is by entry id, then run id, then endpoint name: entry ids
/// of two endpoints' streams may be equal (each stream numbers its own), and run ids are
/// time-ordered within a process (version 7 UUIDs).
struct Cursor {
    key: (u64, u64, String, String),
}

impl Cursor {
    fn parse(c: &str) -> StateResult<Cursor> {
        let bad = || StateError::Conflict("bad cursor".into());
        let mut parts = c.splitn(3, ':');
        let (Some(x), Some(run), Some(endpoint)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let at = entry_id(x).ok_or_else(bad)?;
        Ok(Cursor {
            key: (at.0, at.1, run.to_string(), endpoint.to_string()),
        })
    }
}

/// One run of a listing, as its endpoint's stream holds it.
struct Entry {
    at: (u64, u64),
    endpoint: Arc<str>,
    run: String,
}

impl Entry {
    fn cursor(&self) -> String {
        format!("{}-{}:{}:{}", self.at.0, self.at.1, self.run, self.endpoint)
    }

    /// Its place in the listing's order (newest last).
    fn key(&self) -> (u64, u64, &str, &str) {
        (self.at.0, self.at.1, &self.run, &self.endpoint)
    }
}

/// One endpoint's history stream, read newest first.
struct Stream {
    endpoint: Arc<str>,
    key: String,
    /// The `XREVRANGE` bound of the next read.
    bound: String,
    read: std::collections::VecDeque<Entry>,
    done: bool,
}

/// The listing's history: the endpoints' streams merged newest first (in [`Cursor`]'s order:
/// entry id, run id, endpoint), read `batch` entries per stream and round trip.
struct History {
    streams: Vec<Stream>,
    /// The cursor's place: entries after it (of the cursor's own entry id, which every stream
    /// is read from) are left out.
    after: Option<(u64, u64, String, String)>,
    batch: usize,
}

impl History {
    fn new(endpoints: Vec<String>, cursor: Option<&Cursor>, batch: usize) -> History {
        let bound = match cursor {
            None => "+".to_string(),
            Some(c) => format!("{}-{}", c.key.0, c.key.1),
        };
        let streams = endpoints
            .into_iter()
            .map(|e| Stream {
                key: format!("{J}log:{e}"),
                endpoint: e.into(),
                bound: bound.clone(),
                read: Default::default(),
                done: false,
            })
            .collect();
        History {
            streams,
            after: cursor.map(|c| c.key.clone()),
            batch,
        }
    }

    /// Up to `batch` entries, newest first; empty at the end of the history.
    async fn next_page(&mut self, c: &mut ConnectionManager) -> StateResult<Vec<Entry>> {
        let mut page = Vec::with_capacity(self.batch);
        while page.len() < self.batch {
            // A stream whose read entries are used up is read again before comparing.
            let empty: Vec<usize> = (0..self.streams.len())
                .filter(|&i| self.streams[i].read.is_empty() && !self.streams[i].done)
                .collect();
            if !empty.is_empty() {
                let mut pipe = redis::pipe();
                for &i in &empty {
                    let s = &self.streams[i];
                    pipe.cmd("XREVRANGE")
                        .arg(&s.key)
                        .arg(&s.bound)
                        .arg("-")
                        .arg("COUNT")
                        .arg(self.batch);
                }
                let answers: Vec<redis::Value> = pipe.query_async(c).await.map_err(unavailable)?;
                for (&i, v) in empty.iter().zip(answers) {
                    let s = &mut self.streams[i];
                    let (read, last, got) = entries(v);
                    s.done = read < self.batch;
                    if let Some(x) = last {
                        s.bound = format!("({x}");
                    }
                    let after = &self.after;
                    let endpoint = &s.endpoint;
                    s.read.extend(
                        got.into_iter()
                            .filter_map(|(x, run)| {
                                Some(Entry {
                                    at: entry_id(&x)?,
                                    endpoint: endpoint.clone(),
                                    run,
                                })
                            })
                            .filter(|e| {
                                after.as_ref().is_none_or(|(ms, seq, run, ep)| {
                                    e.key() <= (*ms, *seq, run.as_str(), ep.as_str())
                                })
                            }),
                    );
                }
                continue;
            }
            let newest = self
                .streams
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.read.front().map(|e| (i, e)))
                .max_by(|(_, a), (_, b)| a.key().cmp(&b.key()))
                .map(|(i, _)| i);
            match newest {
                Some(i) => page.extend(self.streams[i].read.pop_front()),
                None => break,
            }
        }
        Ok(page)
    }
}

/// A listing's line of run `id` from what [`READ`] answered (`summary`); `None` when the run is
/// gone or unreadable.
fn summary(id: &str, read: Stored) -> Option<RunSummary> {
    match read {
        Stored::Text(t) => RunRecord::from_text(&t).ok().map(|r| r.summary()),
        Stored::Fields(row) => {
            let field = |i: usize| row.get(i).cloned().flatten();
            let status = RunStatus::parse(&field(1)?)?;
            let n = |i: usize| field(i).and_then(|v| v.parse::<i64>().ok());
            Some(RunSummary {
                id: id.to_string(),
                endpoint: field(0).unwrap_or_default(),
                status,
                created: n(2).unwrap_or(0),
                duration_ms: super::record::duration_ms(n(3), n(4)),
                error: field(5),
            })
        }
    }
}

/// One write's answer in [`APPLY`]'s reply: its integer, or the error Redis raised for it (that
/// write only; the others of the batch were applied).
fn applied(v: redis::Value) -> StateResult<i64> {
    match v {
        redis::Value::Int(n) => Ok(n),
        redis::Value::BulkString(b) => {
            let mut m = String::from_utf8_lossy(&b).into_owned();
            m.truncate(200);
            Err(StateError::Unavailable(format!("redis: {m}")))
        }
        _ => Err(StateError::Unavailable(
            "redis: unexpected journal answer".into(),
        )),
    }
}

/// Writes the `rec` field of `run`: the record without its steps (they are fields of their
/// own), as [`RunRecord::to_text`] writes it.
fn write_rec(run: &RunRecord, a: &mut Args) {
    // A new run has none, so it is not copied (with its request data) to drop them.
    if run.steps.is_empty() {
        a.json(run, b"{}");
    } else {
        let mut base = run.clone();
        base.steps.clear();
        a.json(&base, b"{}");
    }
}

/// How many hash fields [`fields`] writes for `run`.
fn field_count(run: &RunRecord) -> usize {
    let some = |b: bool| usize::from(b);
    7 + some(run.started.is_some())
        + some(run.finished.is_some())
        + some(run.error.is_some())
        + some(run.owner.is_some())
        + run
            .steps
            .iter()
            .map(|s| {
                3 + some(s.started.is_some())
                    + some(s.finished.is_some())
                    + some(s.due.is_some())
                    + some(s.error.is_some())
                    + some(s.checkpoint.is_some())
            })
            .sum::<usize>()
}

/// Appends the hash fields of a whole record (as created, or as requeued by a retry) to `a`,
/// each name then its value; `rec` writes the `rec` field's value (one argument).
fn fields(run: &RunRecord, a: &mut Args, rec: impl FnOnce(&mut Args)) {
    a.push("rec");
    rec(a);
    a.push("endpoint");
    a.push(&run.endpoint);
    a.push("status");
    a.push(run.status.as_str());
    a.push("attempt");
    a.int(run.attempt);
    a.push("created");
    a.int(run.created);
    a.push("resumable");
    a.push(if run.resumable { "1" } else { "0" });
    a.push("nsteps");
    a.int(run.steps.len());
    if let Some(v) = run.started {
        a.push("started");
        a.int(v);
    }
    if let Some(v) = run.finished {
        a.push("finished");
        a.int(v);
    }
    if let Some(v) = &run.error {
        a.push("error");
        a.push(v);
    }
    if let Some(v) = &run.owner {
        a.push("owner");
        a.push(v);
    }
    for (i, s) in run.steps.iter().enumerate() {
        let id = &s.id;
        a.field("o:", id);
        a.int(i + 1);
        a.field("k:", id);
        a.push(&s.kind);
        a.field("t:", id);
        a.push(s.status.as_str());
        if let Some(v) = s.started {
            a.field("b:", id);
            a.int(v);
        }
        if let Some(v) = s.finished {
            a.field("f:", id);
            a.int(v);
        }
        if let Some(v) = s.due {
            a.field("d:", id);
            a.int(v);
        }
        if let Some(v) = &s.error {
            a.field("e:", id);
            a.push(v);
        }
        if let Some(c) = &s.checkpoint {
            a.field("c:", id);
            a.json(c, b"{}");
        }
    }
}

fn int(h: &HashMap<String, String>, name: &str) -> StateResult<Option<i64>> {
    h.get(name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| StateError::Corrupt(format!("{name}: `{v}` is not a number")))
        })
        .transpose()
}

/// A run record from its hash.
fn decode(h: &HashMap<String, String>) -> StateResult<RunRecord> {
    let text = h
        .get("rec")
        .ok_or_else(|| StateError::Corrupt("missing record".into()))?;
    let mut r = RunRecord::from_text(text)?;
    let status = h.get("status").map(String::as_str).unwrap_or("");
    r.status = RunStatus::parse(status)
        .ok_or_else(|| StateError::Corrupt(format!("status `{status}`")))?;
    r.attempt = int(h, "attempt")?.unwrap_or(1).clamp(0, u32::MAX as i64) as u32;
    r.started = int(h, "started")?;
    r.finished = int(h, "finished")?;
    r.error = h.get("error").cloned();
    r.owner = h.get("owner").cloned();
    r.resumable = h.get("resumable").map(String::as_str) != Some("0");
    let mut steps = Vec::new();
    for (name, order) in h {
        let Some(id) = name.strip_prefix("o:") else {
            continue;
        };
        let order: i64 = order
            .parse()
            .map_err(|_| StateError::Corrupt(format!("step {id}: order")))?;
        let get = |p: &str| h.get(&format!("{p}:{id}"));
        let status = get("t").map(String::as_str).unwrap_or("");
        let ts = |p: &str| int(h, &format!("{p}:{id}"));
        steps.push((
            order,
            StepRecord {
                id: id.to_string(),
                kind: get("k").cloned().unwrap_or_default(),
                status: StepStatus::parse(status)
                    .ok_or_else(|| StateError::Corrupt(format!("step {id}: status `{status}`")))?,
                started: ts("b")?,
                finished: ts("f")?,
                due: ts("d")?,
                error: get("e").cloned(),
                checkpoint: get("c")
                    .map(|c| super::Checkpoint::from_text(c))
                    .transpose()?,
            },
        ));
    }
    steps.sort_by_key(|(o, _)| *o);
    r.steps = steps.into_iter().map(|(_, s)| s).collect();
    Ok(r)
}

/// Renews the leases of every unfinished run this process owns, every `lease / 3`.
async fn renew_loop(inner: std::sync::Weak<Inner>) {
    loop {
        let every = match inner.upgrade() {
            Some(i) => Duration::from_millis((i.lease_ms / 3).max(200)),
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(i) = inner.upgrade() else { return };
        let owned: Vec<(String, Vec<String>)> = {
            let o = i.owned.lock().unwrap_or_else(|e| e.into_inner());
            o.iter()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(k, ids)| (k.clone(), ids.iter().cloned().collect()))
                .collect()
        };
        for (owner, ids) in owned {
            for chunk in ids.chunks(500) {
                let mut c = i.conn.clone();
                let mut inv = i.scripts.renew.prepare_invoke();
                inv.arg(J).arg(&owner).arg(i.lease_ms);
                for id in chunk {
                    inv.arg(id);
                }
                match inv.invoke_async::<Vec<String>>(&mut c).await {
                    Ok(lost) => {
                        for id in lost {
                            i.disown(&id);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %unavailable(e), "cannot renew run leases");
                    }
                }
            }
        }
    }
}

impl Backend for RedisBackend {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn store(&self) -> Arc<dyn SharedStore> {
        Arc::new(RedisStore {
            conn: self.inner.conn.clone(),
            handle: self.handle.clone(),
        })
    }

    fn create_run(&self, run: RunRecord) -> BoxFuture<'static, StateResult<()>> {
        self.create(run, write_rec, |run, a| a.json(run, b"{}"))
    }

    /// The `rec` field written from `data` ([`super::record::write_accepted_text`]): no
    /// `serde_json::Value` of the request data is built; the hash is the one
    /// [`Backend::create_run`] of `journal_data(data)` leaves.
    fn create_request_run(
        &self,
        run: RunRecord,
        data: &Value,
    ) -> BoxFuture<'static, StateResult<()>> {
        self.create(
            run,
            |run, a| {
                super::record::write_accepted_text(run, data, &mut a.buf);
                a.ends.push(a.buf.len());
            },
            |run, a| a.push(super::record::record_text(run, data)),
        )
    }

    fn record(&self, event: RunEvent) -> BoxFuture<'static, StateResult<()>> {
        self.inner.record(event).boxed()
    }

    fn record_all(&self, events: Vec<RunEvent>) -> BoxFuture<'static, StateResult<()>> {
        self.inner.record_all(events).boxed()
    }

    fn recover(&self, owner: &str, _now: i64) -> BoxFuture<'static, StateResult<Vec<RunRecord>>> {
        // Other processes may be running: only runs whose lease expired are taken over (the
        // same as a claim). With Redis down the process starts anyway (nothing to resume yet;
        // the claim chore takes the runs over once Redis answers).
        let owner = owner.to_string();
        self.spawn(move |inner| async move {
            // Owner-less queued runs (the backlog) are left for the runner's claims.
            let claimed = match inner.migrate().await {
                Ok(()) => inner.claim(&owner, 1000, false).await,
                Err(e) => Err(e),
            };
            match claimed {
                Err(StateError::Unavailable(m)) => {
                    tracing::warn!(error = %m, "Redis unavailable at start: runs are taken over once it answers");
                    Ok(Vec::new())
                }
                r => r,
            }
        })
    }

    fn claim(&self, owner: &str, limit: usize) -> BoxFuture<'static, StateResult<Vec<RunRecord>>> {
        let owner = owner.to_string();
        self.spawn(move |inner| async move { inner.claim(&owner, limit, true).await })
    }

    fn list_runs(&self, filter: RunFilter) -> BoxFuture<'static, StateResult<RunPage>> {
        self.spawn(move |inner| async move {
            inner.migrate().await?;
            let limit = filter.clamped_limit();
            let cursor = match filter.before.as_deref() {
                Some(c) => Some(Cursor::parse(c)?),
                None => None,
            };
            let mut c = inner.conn.clone();
            let endpoints: Vec<String> = match &filter.endpoint {
                Some(e) => vec![e.clone()],
                None => c
                    .smembers(format!("{J}endpoints"))
                    .await
                    .map_err(unavailable)?,
            };
            let batch = (limit + 1).max(50);
            let mut history = History::new(endpoints, cursor.as_ref(), batch);
            let mut runs: Vec<RunSummary> = Vec::new();
            let mut next = None;
            'outer: loop {
                let page = history.next_page(&mut c).await?;
                if page.is_empty() {
                    break;
                }
                let mut read = inner.scripts.read.prepare_invoke();
                read.arg(J).arg("summary");
                for e in &page {
                    read.arg(&e.run);
                }
                let rows: Vec<redis::Value> =
                    read.invoke_async(&mut c).await.map_err(unavailable)?;
                for (e, row) in page.iter().zip(rows) {
                    let Some(summary) = summary(&e.run, stored(row)) else {
                        continue;
                    };
                    if filter.status.is_some_and(|s| s != summary.status) {
                        continue;
                    }
                    if runs.len() == limit {
                        next = Some(e.cursor());
                        break 'outer;
                    }
                    runs.push(summary);
                }
            }
            Ok(RunPage { runs, next })
        })
    }

    fn get_run(&self, id: &str) -> BoxFuture<'static, StateResult<RunRecord>> {
        let id = id.to_string();
        self.spawn(move |inner| async move { inner.get_run(&id).await })
    }

    fn retry_run(&self, id: &str, from: RetryFrom) -> BoxFuture<'static, StateResult<RunRecord>> {
        let id = id.to_string();
        self.spawn(move |inner| async move {
            let mut rec = inner.get_run(&id).await?;
            let was = rec.status;
            rec.requeue(from)?;
            let mut f = Args::default();
            fields(&rec, &mut f, |a| write_rec(&rec, a));
            let mut c = inner.conn.clone();
            let mut inv = inner.scripts.retry.prepare_invoke();
            inv.arg(J).arg(&id).arg(was.as_str()).arg(f.len() / 2);
            for a in f.iter() {
                inv.arg(a);
            }
            let done: i64 = inv.invoke_async(&mut c).await.map_err(unavailable)?;
            if done == 0 {
                return Err(StateError::Conflict(format!(
                    "run {id} changed meanwhile; try again"
                )));
            }
            Ok(rec)
        })
    }

    fn purge(&self, retention: Retention, now: i64) -> BoxFuture<'static, StateResult<u64>> {
        self.spawn(move |inner| async move {
            inner.migrate().await?;
            let cutoff = now
                .saturating_sub((retention.days as i64).saturating_mul(86_400_000))
                .max(0);
            let max = i64::try_from(retention.max_per_endpoint).unwrap_or(i64::MAX);
            let mut c = inner.conn.clone();
            let mut purged = 0u64;
            let endpoints: Vec<String> = c
                .smembers(format!("{J}endpoints"))
                .await
                .map_err(unavailable)?;
            // An endpoint whose keys Redis refuses (a key of another type under its name) is
            // left for the next endpoint; its error is answered once the others are purged.
            // A connection error ends the purge at once.
            let mut refused = None;
            for ep in endpoints {
                match purge_endpoint(&inner, &mut c, &ep, cutoff, max).await {
                    Ok(n) => purged += n,
                    Err(e) if e.is_io_error() || e.is_timeout() => return Err(unavailable(e)),
                    Err(e) => {
                        refused.get_or_insert_with(|| {
                            StateError::Unavailable(format!("redis: endpoint {ep}: {e}"))
                        });
                    }
                }
            }
            if let Some(e) = refused {
                return Err(e);
            }
            Ok(purged)
        })
    }
}

/// Purges one endpoint's history (`Backend::purge`): by age, its stream in acceptance order, a
/// [`PURGE_AGE`] call per [`PURGE_SCAN`] entries; then by count, until `max` finished runs are
/// left or the oldest `PURGE_SCAN` entries hold nothing to purge (unfinished runs are kept).
/// Answers the number of runs purged.
async fn purge_endpoint(
    inner: &Inner,
    c: &mut ConnectionManager,
    ep: &str,
    cutoff: i64,
    max: i64,
) -> redis::RedisResult<u64> {
    let mut purged = 0u64;
    let mut after = "-".to_string();
    loop {
        let (n, scanned, last, stopped): (i64, usize, String, i64) = inner
            .scripts
            .purge_age
            .arg(J)
            .arg(ep)
            .arg(cutoff)
            .arg(&after)
            .arg(PURGE_SCAN)
            .invoke_async(c)
            .await?;
        purged += n.max(0) as u64;
        if stopped == 1 || scanned < PURGE_SCAN {
            break;
        }
        after = last;
    }
    loop {
        let (n, removed, excess): (i64, i64, i64) = inner
            .scripts
            .purge_count
            .arg(J)
            .arg(ep)
            .arg(max)
            .arg(PURGE_SCAN)
            .invoke_async(c)
            .await?;
        purged += n.max(0) as u64;
        if removed == 0 || excess <= 0 {
            break;
        }
    }
    Ok(purged)
}

/// The shared store on Redis: values as JSON with `PX` TTLs, counters with `INCRBY`.
/// Synchronous (templates call it during a render): each call waits for one Redis round trip
/// run on the backend's runtime (see the module documentation).
pub struct RedisStore {
    conn: ConnectionManager,
    handle: tokio::runtime::Handle,
}

impl RedisStore {
    fn wait<T: Send + 'static>(
        &self,
        f: impl Future<Output = redis::RedisResult<T>> + Send + 'static,
    ) -> redis::RedisResult<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(f.await);
        });
        let recv = move || {
            rx.recv().unwrap_or_else(|_| {
                Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "redis task stopped",
                )))
            })
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(recv)
            }
            _ => recv(),
        }
    }
}

impl SharedStore for RedisStore {
    fn get(&self, name: &str) -> Option<Value> {
        self.try_get(name).ok().flatten()
    }

    fn try_get(&self, name: &str) -> Result<Option<Value>, Error> {
        let mut c = self.conn.clone();
        let key = format!("{M}{name}");
        match self.wait(async move { c.get::<_, Option<String>>(key).await }) {
            Ok(Some(text)) => Ok(Some(
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(j) => Value::from(&j),
                    Err(_) => Value::from(text.as_str()),
                },
            )),
            Ok(None) => Ok(None),
            Err(e) => {
                let e = unavailable(e);
                tracing::warn!(error = %e, "shared store read failed");
                Err(Error::new(
                    ErrorKind::Host,
                    format!("memoryGet: {STORE_UNAVAILABLE} ({e})"),
                ))
            }
        }
    }

    fn set(&self, name: &str, value: Value, ttl: Duration) {
        if let Err(e) = self.try_set(name, value, ttl) {
            tracing::warn!(error = %e.message(), "shared store write failed");
        }
    }

    fn try_set(&self, name: &str, value: Value, ttl: Duration) -> Result<(), Error> {
        let mut c = self.conn.clone();
        let key = format!("{M}{name}");
        let ms = ttl.as_millis().min(u64::MAX as u128) as u64;
        let text = serde_json::to_string(&value.to_json()).unwrap_or_else(|_| "null".into());
        let r = self.wait(async move {
            if ms == 0 {
                c.del::<_, ()>(key).await
            } else {
                c.pset_ex::<_, _, ()>(key, text, ms).await
            }
        });
        r.map_err(|e| {
            Error::new(
                ErrorKind::Host,
                format!("set_memory: {STORE_UNAVAILABLE} ({})", unavailable(e)),
            )
        })
    }

    fn increment(&self, name: &str, by: i64) -> Result<i64, Error> {
        let mut c = self.conn.clone();
        let key = format!("{M}{name}");
        self.wait(async move { c.incr::<_, _, i64>(key, by).await })
            .map_err(|e| {
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
                    || e.to_string().contains("not an integer")
                {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        format!("incrementAndGet: `{name}` does not hold an integer"),
                    )
                } else {
                    Error::new(
                        ErrorKind::Host,
                        format!("incrementAndGet: {STORE_UNAVAILABLE} ({})", unavailable(e)),
                    )
                }
            })
    }
}

#[cfg(test)]
#[path = "redis_tests.rs"]
mod tests;

#[path = "redis_writer.rs"]
mod writer;
