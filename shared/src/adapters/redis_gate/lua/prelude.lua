-- The prelude of every gate script (scripts.rs loads it in front of each):
-- the fence and a fan's record, written once.
--
-- A fan's record is 'position:acceptedAtMs' once its entry is durably
-- queued, and 'position:acceptedAtMs:owner' while it is not: the owner is
-- GRANTED while a line's grant waits for its fan to claim it, else the
-- token of the request that sends the entry to SQS, with ':shared' once
-- another request took that send over.

local GRANTED = '*'

-- Whether the gate state in Redis was built on the server running this
-- script (its run_id): a failover or a stale snapshot makes it false, and
-- the script refuses with 'state_lost' until a restore.
local function fence_holds(state_key, run_id)
  return redis.call('GET', state_key) == run_id
end

-- position, acceptedAtMs, owner ('' once queued), shared ('' or 'shared')
local function parse_record(record)
  return string.match(record, '^(%d+):(%d+):?([^:]*):?(.*)$')
end

-- An integer as Redis should store it: Lua's own tostring keeps 14
-- digits, and an order key or a time in ms needs up to 16.
local function int(n)
  return string.format('%d', n)
end

local function record_of(position, accepted_at, owner)
  if owner == '' then return int(position) .. ':' .. int(accepted_at) end
  return int(position) .. ':' .. int(accepted_at) .. ':' .. owner
end
