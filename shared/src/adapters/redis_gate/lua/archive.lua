-- Archive a closed event: once it closed `after` ago and no send is
-- pending, drop what the gate holds per fan (fans, notes, the line's
-- counts, who was counted, its door, grants and syncing environments):
-- PostgreSQL holds the entries. The definition and counters stay, marked
-- archived, so the event still reads and refuses as closed, a fan's read
-- of its entry answers `archived`, and a publish cannot reopen it with its
-- fans forgotten (publish.lua).
-- KEYS: meta, fans, notes, pending, then the line's keys
-- ARGV: run_id, nowMs, afterMs
-- Replies {'ok'}, {'already'}, {'not_yet'}, {'pending'}, {'not_found'} or
-- {'state_lost'} or {'absent'}.
local meta_key, pending_key = KEYS[1], KEYS[4]
local run_id, now_ms, after_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local refused = refusal(meta_key, run_id)
if refused then return {refused} end
local m = redis.call('HMGET', meta_key, 'closesAtMs', 'archived')
if not m[1] then return {'not_found'} end
if m[2] == '1' then return {'already'} end
if tonumber(m[1]) + after_ms > now_ms then return {'not_yet'} end
-- A send with an unknown outcome waits for the sweep, which needs its record.
if redis.call('ZCARD', pending_key) > 0 then return {'pending'} end
redis.call('UNLINK', unpack(KEYS, 2))
redis.call('HSET', meta_key, 'archived', '1')
return {'ok'}
