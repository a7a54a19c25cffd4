"""The Lua scripts of the Redis counter store (adapters/redis/counters.py)."""

# KEYS: the distinct keys of the batch, the script's marker and the markers it names included.
# ARGV[1]: 'm ttl a ...': m, this script's marker (index in KEYS; 0: none), ttl its time to live, a ... markers
# of answered scripts to delete. A script whose marker exists was given up on by its sender, who already
# resolved it in a later script: it does nothing ('void'). At its end the marker records what it did: 'h i ...'
# (the calls i, from 0, it held), '-' (settlements, nothing held); none when it did neither.
# ARGV[2]: this script's settlements, 'k back used' per key (k: index in KEYS; back: what the holds gave back,
# negative; used: what was metered).
# ARGV[3]: the scripts this process sent whose answer never came, one line each: 'm|settlements|call|call...'
# (a call: 'k amount' per ask it would have held). Each is resolved exactly once (SET marker x NX): never ran ->
# its settlements are applied and it is voided; ran -> the holds it granted its (failed) callers are given back.
# ARGV[4..]: one call each, 'k amount limit ttl p w' per ask (limit, ttl '-' for none; p: the previous bucket's
# index, 0 for none; w: its weight in millionths).
# Answers one line per call: 'm i ...' (asks whose keys nobody seeded, from 0), 'r i u r p ...' (refused at
# ask i, nothing held) or 'h 0 u r p ...' (every ask held); u r p: each ask's counter before the call.
# Reads and holds are gathered per key (one HMGET and one HINCRBY each); sums stay below 2^52, where a Lua
# number is still an exact integer.
RESERVE = """
local function words(s)
  local t, n = {}, 0
  for w in string.gmatch(s, '%S+') do
    n = n + 1
    t[n] = w
  end
  return t
end
local head = words(ARGV[1])
local mark, ttl = tonumber(head[1]), head[2]
if mark ~= 0 and redis.call('EXISTS', KEYS[mark]) == 1 then return 'void' end
for j = 3, #head do redis.call('DEL', KEYS[tonumber(head[j])]) end
local function apply(st)
  for j = 1, #st, 3 do
    local k = KEYS[tonumber(st[j])]
    if redis.call('EXISTS', k) == 1 then
      if redis.call('HINCRBY', k, 'r', st[j + 1]) < 0 then redis.call('HSET', k, 'r', '0') end
      if st[j + 2] ~= '0' then redis.call('HINCRBY', k, 'u', st[j + 2]) end
    end
  end
end
local function give_back(t)
  for j = 1, #t, 2 do
    local k = KEYS[tonumber(t[j])]
    if redis.call('EXISTS', k) == 1 then
      if redis.call('HINCRBY', k, 'r', '-' .. t[j + 1]) < 0 then redis.call('HSET', k, 'r', '0') end
    end
  end
end
for line in string.gmatch(ARGV[3], '[^\\n]+') do
  local parts = {}
  for part in string.gmatch(line .. '|', '([^|]*)|') do parts[#parts + 1] = part end
  local mk = KEYS[tonumber(parts[1])]
  if redis.call('SET', mk, 'x', 'NX', 'EX', ttl) then
    apply(words(parts[2]))
  else
    local v = redis.call('GET', mk)
    if string.sub(v, 1, 1) == 'h' then
      local held = words(v)
      for j = 2, #held do give_back(words(parts[tonumber(held[j]) + 3])) end
    end
    if v ~= 'x' then redis.call('SET', mk, 'x', 'EX', ttl) end
  end
end
local own = words(ARGV[2])
apply(own)
local held_calls = 'h'
local BIG = 4503599627370496
local seen = {}
local function counter(i)
  local c = seen[i]
  if c == nil then
    local v = redis.call('HMGET', KEYS[i], 'u', 'r')
    c = {u = v[1], r0 = v[2] or '0', r = tonumber(v[2] or '0'), held = 0, moved = false}
    c.un = tonumber(c.u or '0')
    seen[i] = c
  end
  return c
end
local out = {}
for a = 4, #ARGV do
  local t = words(ARGV[a])
  local n = #t / 6
  local missing = 'm'
  for i = 0, n - 1 do
    if t[6 * i + 4] == '-' and not counter(tonumber(t[6 * i + 1])).u then missing = missing .. ' ' .. i end
  end
  if missing ~= 'm' then
    out[#out + 1] = missing
  else
    local before = {}
    local refused, tightest = -1, 0
    for i = 0, n - 1 do
      local c = counter(tonumber(t[6 * i + 1]))
      local p, ps = 0, '0'
      if t[6 * i + 5] ~= '0' then
        local q = counter(tonumber(t[6 * i + 5]))
        p = q.un + q.r
        if p ~= 0 then ps = string.format('%.0f', p) end
      end
      local r = c.r0
      if c.moved then r = string.format('%.0f', c.r) end
      before[i + 1] = (c.u or '0') .. ' ' .. r .. ' ' .. ps
      local limit = t[6 * i + 3]
      if limit ~= '-' then
        local counted = c.un + c.r
        if p > 0 then counted = counted + p * tonumber(t[6 * i + 6]) / 1000000 end
        local room = tonumber(limit) - counted
        if tonumber(t[6 * i + 2]) > room and (refused < 0 or room < tightest) then refused, tightest = i, room end
      end
    end
    if refused >= 0 then
      out[#out + 1] = 'r ' .. refused .. ' ' .. table.concat(before, ' ')
    else
      for i = 0, n - 1 do
        local k = tonumber(t[6 * i + 1])
        local c = seen[k]
        local amount = tonumber(t[6 * i + 2])
        if amount >= BIG then
          redis.call('HINCRBY', KEYS[k], 'r', t[6 * i + 2])
        else
          if c.held + amount >= BIG then
            redis.call('HINCRBY', KEYS[k], 'r', string.format('%.0f', c.held))
            c.held = 0
          end
          c.held = c.held + amount
        end
        c.r = c.r + amount
        c.moved = true
        if t[6 * i + 4] ~= '-' then c.ttl = t[6 * i + 4] end
      end
      out[#out + 1] = 'h 0 ' .. table.concat(before, ' ')
      held_calls = held_calls .. ' ' .. (a - 4)
    end
  end
end
for k = 1, #KEYS do
  local c = seen[k]
  if c ~= nil and c.moved then
    if c.held > 0 then redis.call('HINCRBY', KEYS[k], 'r', string.format('%.0f', c.held)) end
    if c.ttl then
      redis.call('HSETNX', KEYS[k], 'u', '0')
      redis.call('EXPIRE', KEYS[k], c.ttl)
    end
  end
end
if mark ~= 0 and (held_calls ~= 'h' or #own > 0) then
  if held_calls == 'h' then held_calls = '-' end
  redis.call('SET', KEYS[mark], held_calls, 'EX', ttl)
end
return table.concat(out, '\\n')
"""

SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'u', ARGV[1], 'r', '0')
if ARGV[2] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

RAISE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local u = tonumber(redis.call('HGET', KEYS[1], 'u') or '0')
if tonumber(ARGV[1]) > u then redis.call('HSET', KEYS[1], 'u', ARGV[1]) return 1 end
return 0
"""
