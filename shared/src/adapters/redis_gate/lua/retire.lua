-- Retire an event: drop everything the gate holds for it and leave a
-- tombstone in its definition's place, so a publish that read the calendar
-- before the delete (the scheduler's pre-warm) cannot bring the id back
-- with its counters at zero and hand its positions out a second time.
-- KEYS: meta, then every other key of the event
-- ARGV: run_id (the tombstone is built here: its fence)
-- Replies {'ok'}.
redis.call('UNLINK', unpack(KEYS))
redis.call('HSET', KEYS[1], 'retired', '1', 'fence', ARGV[1])
return {'ok'}
