-- Retire an event: drop everything the gate holds for it and leave a
-- tombstone in its definition's place, so a publish that read the calendar
-- before the delete (the scheduler's pre-warm) cannot bring the id back
-- with its counters at zero and hand its positions out a second time.
-- KEYS: meta, fans, notes, pending, line, held, held-due
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
redis.call('HSET', KEYS[1], 'retired', '1')
return {'ok'}
