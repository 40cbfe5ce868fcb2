-- The prelude of every gate script (scripts.rs loads it in front of each):
-- the per-event fence and a fan's record, written once.
--
-- A fan's record is 'position:acceptedAtMs' once its entry is durably
-- queued, and 'position:acceptedAtMs:owner' while it is not: the owner is
-- GRANTED while a line's grant waits for its fan to claim it, else the
-- token of the request that sends the entry to SQS, with ':shared' once
-- another request took that send over.

local GRANTED = '*'

-- Why a script must refuse its event, or nil when it may go on. An
-- event's state is fenced by the `run_id` of the server it was built on,
-- its meta hash's `fence` field: a failover or a stale snapshot makes the
-- server another, and the event answers 'state_lost' until a restore
-- rebuilds it (so does a definition a restore has not finished). An event
-- with no key at all is 'absent': unknown, or lost with all its keys; the
-- adapter asks the directory which (dir.lua).
local function refusal(meta_key, run_id)
  local fence = redis.call('HGET', meta_key, 'fence')
  if fence == run_id then return nil end
  if fence or redis.call('EXISTS', meta_key) == 1 then return 'state_lost' end
  return 'absent'
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
