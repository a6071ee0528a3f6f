"""The Lua scripts behind ``limits.redis``: each decision is one atomic script.

Time is Redis's own clock (``TIME``, microseconds), never the caller's, so replicas with
skewed clocks share one window. Numbers handed to ``redis.call`` go through ``fmt``:
Lua's default number-to-string conversion keeps 14 significant digits, which would round
a microsecond timestamp (16 digits) and turn large integers into "1e+15" (rejected by
HINCRBY).

Rate limits, per subject: a ZSET ``{prefix}:rl:{subject}`` (member: reservation id,
score: admission time in µs) and a HASH ``{prefix}:rl:{subject}:t`` (reservation id ->
tokens, and ``_sum``: the tokens of every entry still in the window). Both expire one
window (plus a second) after the last admission.

Spend, per key and period: a HASH ``{prefix}:sp:{key}:{period}`` with ``spent`` and
``reserved`` in nano-dollars (integers: HINCRBY never drifts the way repeated float
additions do) and ``r:{id}`` -> amount per reservation in flight, and a ZSET
``{prefix}:sp:{key}:{period}:r`` of reservation ids scored by expiry (µs), which every
reserve prunes so a crashed replica's reservations release budget on their own.
``seeded`` marks a hash whose spend was set from the ledger: a hash without it was created
by a settle after the data was lost (restart without persistence, FLUSH, eviction), and
reserve reports that so the gateway re-seeds it. A ZSET ``{prefix}:sp:{key}:{period}:d``
holds the ids of settles already applied (scored by when they may be forgotten), so a
settle sent again after its reply was lost adds nothing twice.
"""

from __future__ import annotations

# "-0" is not an integer to Redis, hence the explicit zero.
_FMT = """
local function fmt(n)
  if n == 0 then return '0' end
  return string.format('%.0f', n)
end
"""

_PRELUDE = (
    _FMT
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""
)

# KEYS: ZSET, HASH of each rule in turn.
# ARGV: window (µs), reservation id, tokens, then rpm and tpm of each rule (-1: none).
# Returns {0, rule index, 1 requests | 2 tokens, wait µs, limit, used} on refusal, or
# {1, now, then per rule: count after, tokens after, oldest entry's time}.
RESERVE = (
    _PRELUDE
    + """
local window = tonumber(ARGV[1])
local id = ARGV[2]
local tokens = tonumber(ARGV[3])
local cutoff = fmt(now - window)
local rules = #KEYS / 2
local counts, sums, heads = {}, {}, {}

local function fits(used, tpm)
  return used + tokens <= tpm or (used <= 0 and tpm > 0)
end

for i = 1, rules do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff)
  if #gone > 0 then
    local freed = 0
    for j = 1, #gone, 500 do
      local chunk = {}
      for k = j, math.min(j + 499, #gone) do chunk[#chunk + 1] = gone[k] end
      local values = redis.call('HMGET', h, unpack(chunk))
      for k = 1, #values do freed = freed + (tonumber(values[k]) or 0) end
      redis.call('HDEL', h, unpack(chunk))
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', cutoff)
    redis.call('HINCRBY', h, '_sum', fmt(-freed))
  end
  local count = redis.call('ZCARD', z)
  local used = tonumber(redis.call('HGET', h, '_sum') or '0')
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  local head = now
  if first[2] then head = tonumber(first[2]) end
  local rpm, tpm = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  if rpm >= 0 and count >= rpm then
    local wait = window  -- rpm 0: nothing ever fits
    if rpm > 0 then wait = head + window - now end
    return {0, i, 1, fmt(wait), rpm, count}
  end
  if tpm >= 0 and not fits(used, tpm) then
    -- Only on refusal: walk oldest first until enough tokens have left the window.
    local wait = window
    local left = used
    local entries = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
    for j = 1, #entries, 2 do
      left = left - (tonumber(redis.call('HGET', h, entries[j])) or 0)
      if fits(left, tpm) then
        wait = tonumber(entries[j + 1]) + window - now
        break
      end
    end
    return {0, i, 2, fmt(wait), tpm, fmt(used)}
  end
  counts[i], sums[i], heads[i] = count, used, head
end

local ttl = fmt(math.floor(window / 1000) + 1000)
local out = {1, fmt(now)}
for i = 1, rules do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('ZADD', z, fmt(now), id)
  redis.call('HSET', h, id, fmt(tokens))
  redis.call('HINCRBY', h, '_sum', fmt(tokens))
  redis.call('PEXPIRE', z, ttl)
  redis.call('PEXPIRE', h, ttl)
  out[#out + 1] = counts[i] + 1
  out[#out + 1] = fmt(sums[i] + tokens)
  out[#out + 1] = fmt(heads[i])
end
return out
"""
)

# KEYS: the token HASH of each rule. ARGV: reservation id, actual tokens.
SETTLE = (
    _FMT
    + """
local actual = tonumber(ARGV[2])
for i = 1, #KEYS do
  local old = redis.call('HGET', KEYS[i], ARGV[1])
  if old then  -- absent: the entry already left the window
    redis.call('HSET', KEYS[i], ARGV[1], ARGV[2])
    redis.call('HINCRBY', KEYS[i], '_sum', fmt(actual - tonumber(old)))
  end
end
return 1
"""
)

# Releases the reservations of spend HASH h / ZSET z that expired by ``now``.
_PRUNE = """
local function prune(h, z)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', fmt(now))
  if #gone == 0 then return end
  local freed = 0
  for j = 1, #gone, 500 do
    local chunk = {}
    for k = j, math.min(j + 499, #gone) do chunk[#chunk + 1] = 'r:' .. gone[k] end
    local values = redis.call('HMGET', h, unpack(chunk))
    for k = 1, #values do freed = freed + (tonumber(values[k]) or 0) end
    redis.call('HDEL', h, unpack(chunk))
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', fmt(now))
  redis.call('HINCRBY', h, 'reserved', fmt(-freed))
end
"""

# KEYS: spend HASH, reservations ZSET.
# ARGV: budget, amount (nano-dollars), reservation id, reservation ttl (µs),
# key ttl (ms, -1: none).
# Returns {0, spent, reserved, seeded} on refusal, {1, spent, reserved after, seeded} on
# admission; seeded is 0 when the ledger's figure never reached this hash.
SPEND_RESERVE = (
    _PRELUDE
    + _PRUNE
    + """
local h, z = KEYS[1], KEYS[2]
local budget, amount = tonumber(ARGV[1]), tonumber(ARGV[2])
prune(h, z)
local got = redis.call('HMGET', h, 'spent', 'reserved', 'seeded')
local spent, reserved = tonumber(got[1] or '0'), tonumber(got[2] or '0')
local seeded = 0
if got[3] then seeded = 1 end
if spent + reserved >= budget then
  return {0, fmt(spent), fmt(reserved), seeded}
end
redis.call('HINCRBY', h, 'reserved', ARGV[2])
redis.call('HSET', h, 'r:' .. ARGV[3], ARGV[2])
redis.call('ZADD', z, fmt(now + tonumber(ARGV[4])), ARGV[3])
local keyttl = tonumber(ARGV[5])
if keyttl > 0 then
  redis.call('PEXPIRE', h, ARGV[5])
  redis.call('PEXPIRE', z, ARGV[5])
end
return {1, fmt(spent), fmt(reserved + amount), seeded}
"""
)

# KEYS: spend HASH, reservations ZSET, applied-settles ZSET.
# ARGV: reservation id ('' for none), actual (nano-dollars), key ttl (ms, -1: none),
# settle id, how long to remember it (µs).
# Returns 1 when applied, 0 when this settle id was applied already.
SPEND_SETTLE = (
    _PRELUDE
    + """
local h, z, d = KEYS[1], KEYS[2], KEYS[3]
local keep = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', d, '-inf', fmt(now))
if redis.call('ZADD', d, 'NX', fmt(now + keep), ARGV[4]) == 0 then
  return 0
end
redis.call('PEXPIRE', d, fmt(math.floor(keep / 1000) + 1000))
if ARGV[1] ~= '' and redis.call('ZREM', z, ARGV[1]) == 1 then
  local amount = redis.call('HGET', h, 'r:' .. ARGV[1]) or '0'
  redis.call('HDEL', h, 'r:' .. ARGV[1])
  redis.call('HINCRBY', h, 'reserved', fmt(-tonumber(amount)))
end
redis.call('HINCRBY', h, 'spent', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', h, ARGV[3]) end
return 1
"""
)

# KEYS: spend HASH. ARGV: the ledger's spent (nano-dollars), key ttl (ms, -1: none).
# Once per counter: a seeded hash keeps its figure (it is ahead of the ledger, which writes
# in batches, and spend a replica sends after an outage is in the ledger already). A hash
# without the marker was lost and re-created by settles: it takes the larger figure, never
# lowering what it counted since. Returns 1 when it seeded.
SPEND_SEED = """
if redis.call('HEXISTS', KEYS[1], 'seeded') == 1 then return 0 end
local want = tonumber(ARGV[1])
if want > tonumber(redis.call('HGET', KEYS[1], 'spent') or '0') then
  redis.call('HSET', KEYS[1], 'spent', ARGV[1])
end
redis.call('HSET', KEYS[1], 'seeded', '1')
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

__all__ = ["RESERVE", "SETTLE", "SPEND_RESERVE", "SPEND_SEED", "SPEND_SETTLE"]
