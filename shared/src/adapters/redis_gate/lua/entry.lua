-- Read one fan's entry in one round trip.
-- KEYS: meta, fans, notes
-- ARGV: run_id, fanId
-- Replies {'ok', position, acceptedAtMs, hasNote, note}, {'pending'},
-- {'none'}, {'archived'}, {'not_found'}, {'state_lost'} or {'absent'}.
local meta_key, fans_key, notes_key = KEYS[1], KEYS[2], KEYS[3]
local run_id, fan = ARGV[1], ARGV[2]

local refused = refusal(meta_key, run_id)
if refused then return {refused} end
local m = redis.call('HMGET', meta_key, 'capacity', 'archived')
if not m[1] then return {'not_found'} end
local record = redis.call('HGET', fans_key, fan)
if not record then
  -- A closed event restored without its fan records cannot say "none".
  if m[2] == '1' then return {'archived'} end
  return {'none'}
end
local position, accepted_at, owner = parse_record(record)
if owner ~= '' then return {'pending'} end
local note = redis.call('HGET', notes_key, fan)
if note then return {'ok', position, accepted_at, '1', note} end
return {'ok', position, accepted_at, '0', ''}
