-- The few certifications off the schedule (marked), in keyset order; expiry_date included so
-- that monitoring reads the index alone.
create index concurrently if not exists certifications_next_action_idx
    on public.certifications (next_action_on, id) include (expiry_date)
    where status = 'active' and next_action_on is not null;
