-- certexpiry.next_action_date lost its last caller when the night's work went set-based
-- (20261130000400: certexpiry.next_actions computes a page at once). One definition of "when is
-- a certification's next action" is left.

drop function certexpiry.next_action_date(uuid, date, date, integer[]);

comment on column public.certifications.next_action_on is
    'Organisation-local date of the next effect due (a reminder or the auto-pause); -infinity: '
    'not yet looked at; null: nothing left for this expiry date, or not active. Kept by the sweep '
    '(certexpiry.next_actions) and the trigger certifications_next_action; never set by hand.';
