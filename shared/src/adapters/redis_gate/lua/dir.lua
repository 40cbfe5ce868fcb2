-- The directory of events: which ids the gate was ever given, so an event
-- with no key at all can be told apart: unknown (404) or lost with all its
-- keys (a flush, a failover to a replica that never had it: 503 until a
-- restore). It is one hash, fenced like an event (field '~fence', which no
-- event id can be) and rebuilt from PostgreSQL when it is lost.
-- KEYS: directory
-- ARGV: run_id, step, then per step:
--   list:  id     list a new event before its first publish
--   check: id     whether an event without keys was ever listed
--   add:   ids..  list ids (a rebuild, before its stamp)
--   stamp: -      the directory is whole on this server
--   holds: -      whether it is
-- Replies {'state_lost'} when the directory was built elsewhere (list,
-- check); list {'new'} or {'listed'}; check {'listed'} or {'unknown'};
-- holds 1 or 0; add and stamp 1.
local dir_key = KEYS[1]
local run_id, step = ARGV[1], ARGV[2]
local FENCE = '~fence'

if step == 'add' then
  for i = 3, #ARGV do redis.call('HSET', dir_key, ARGV[i], '1') end
  return 1
elseif step == 'stamp' then
  redis.call('HSET', dir_key, FENCE, run_id)
  return 1
end
local holds = redis.call('HGET', dir_key, FENCE) == run_id
if step == 'holds' then return holds and 1 or 0 end
if not holds then return {'state_lost'} end
if step == 'list' then
  if redis.call('HSETNX', dir_key, ARGV[3], '1') == 1 then return {'new'} end
  return {'listed'}
end
if redis.call('HEXISTS', dir_key, ARGV[3]) == 1 then return {'listed'} end
return {'unknown'}
