-- The directory of events: which ids the gate was ever given, each with
-- the hash tag its keys carry (placement: the tag puts the event on its
-- shard of a cluster), so an event with no key at all can be told apart:
-- unknown (404) or lost with all its keys (a flush, a failover to a replica
-- that never had it: 503 until a restore). It is one hash, fenced like an
-- event (field '~fence', which no event id can be) and rebuilt from
-- PostgreSQL when it is lost. A value '1' (listed before tags) is the id.
-- KEYS: directory
-- ARGV: run_id, step, then per step:
--   list:  id tag        list a new event under tag before its first publish
--   tag:   id            the tag of a listed event
--   check: id            whether an event without keys was ever listed
--   add:   id tag ...    list events (a rebuild, before its stamp)
--   stamp: -             the directory is whole on this server
--   holds: -             whether it is
-- Replies {'state_lost'} when the directory was built elsewhere (list,
-- check, tag for an id it lacks); list {'new', tag} or {'listed', tag};
-- tag {'listed', tag} or {'unknown'}; check {'listed'} or {'unknown'};
-- holds 1 or 0; add and stamp 1.
local dir_key = KEYS[1]
local run_id, step = ARGV[1], ARGV[2]
local FENCE = '~fence'

local function tag_of(id)
  local tag = redis.call('HGET', dir_key, id)
  if tag == '1' then return id end
  return tag
end

if step == 'add' then
  for i = 3, #ARGV, 2 do redis.call('HSET', dir_key, ARGV[i], ARGV[i + 1]) end
  return 1
elseif step == 'stamp' then
  redis.call('HSET', dir_key, FENCE, run_id)
  return 1
end
if step == 'tag' then
  -- A tag never changes, so one found in a directory built elsewhere is
  -- still the event's.
  local tag = tag_of(ARGV[3])
  if tag then return {'listed', tag} end
end
local holds = redis.call('HGET', dir_key, FENCE) == run_id
if step == 'holds' then return holds and 1 or 0 end
if not holds then return {'state_lost'} end
if step == 'tag' then return {'unknown'} end
if step == 'list' then
  if redis.call('HSETNX', dir_key, ARGV[3], ARGV[4]) == 1 then return {'new', ARGV[4]} end
  return {'listed', tag_of(ARGV[3])}
end
if redis.call('HEXISTS', dir_key, ARGV[3]) == 1 then return {'listed'} end
return {'unknown'}
