-- certifications_expiry_date_status_idx no longer serves any query, and every certification
-- write of the night maintains it.
--
-- The original specification asked for it for the monitoring query; that query now reads the
-- night's leftover work through certifications_next_action_idx (20261130000600), and nothing
-- else filters certifications by expiry date: the sweep pages by next_action_on and reads
-- certifications by id (next_actions, apply_effects, the dating UPDATE), remediation and
-- still_missed go by id or through missed_auto_pauses, plan_night through
-- actionable_certifications, the ops console through these functions. The planner only picked
-- it for an empty range inside apply_auto_pauses (no expired certification in a batch of
-- reminders), where the primary key answers the same ids.
--
-- Measured on the bench's cohort due its 30-day reminder (160,000 certifications, 321 batches,
-- each certification's next action rewritten once): 500-row UPDATEs of next_action_on cost
-- 20 us a row with the index and 16 us without; whole nights, five alternating pairs: median
-- 11.5 s with it, 11.2 s without. (`if exists`: re-runnable, as the newest migration must be.)

drop index if exists public.certifications_expiry_date_status_idx;
