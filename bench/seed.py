"""Set-based seeding for benchmarks and load tests: N certifications in one statement.

Mentors get two certifications each on average; expiry dates are spread from 60 days expired
to 90 days ahead of `today`; a share is already paused (as if earlier nights had run).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg


def seed_certifications(
    conn: psycopg.Connection[Any], count: int, today: date, *, paused_share: float = 0.3
) -> None:
    """Insert `count` certifications (and count/2 mentors), then ANALYZE."""
    mentors = max(1, count // 2)
    conn.execute(
        """
        insert into public.peer_mentors (id, full_name, status)
        select gen_random_uuid(), 'Bench Mentor ' || g, 'active' from generate_series(1, %(m)s) g
        """,
        {"m": mentors},
    )
    conn.execute(
        """
        with m as (select id, row_number() over () as rn from public.peer_mentors)
        insert into public.certifications (peer_mentor_id, expiry_date, status)
        select m.id,
               %(today)s::date + ((hashtext(g::text) & 2147483647) %% 151 - 60),
               case when (hashtext('p' || g::text) & 2147483647) %% 1000 < %(paused)s * 1000
                         and (hashtext(g::text) & 2147483647) %% 151 < 60
                    then 'paused' else 'active' end
        from generate_series(1, %(n)s) g
        join m on m.rn = 1 + (g %% %(m)s)
        """,
        {"today": today, "n": count, "m": mentors, "paused": paused_share},
    )
    conn.execute("analyze public.peer_mentors; analyze public.certifications")
