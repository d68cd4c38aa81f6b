-- Local and test databases only: the peer-mentor app this job is a guest of, as its own
-- Supabase project would have it before the job is installed. Never apply this to a real
-- project: there the app's own migrations made these objects.
--
-- It plays what the job must not disturb: the app's tables with columns and statuses of their
-- own (a certification can be revoked, a mentor inactive), row level security for mentors and
-- coordinators, grants to anon and authenticated from the hosted default privileges
-- (supabase/local/bootstrap.sql), an RPC, a table the app creates after the job is installed
-- (created by tests), and the app's own migration history, written as the Supabase CLI writes
-- it. The job reads and writes only what docs/deploy.md ("The app's contract") lists.
--
-- Applied once to a database that has no public.certifications (certexpiry_ops.schema).

create table public.courses (
    id uuid primary key default gen_random_uuid(),
    title text not null,
    published boolean not null default true
);

create table public.peer_mentors (
    id uuid primary key default gen_random_uuid(),
    user_id uuid unique,
    full_name text not null,
    national_id text,
    email text,
    phone text,
    region text not null default 'oslo',
    status text not null default 'active' check (status in ('active', 'paused', 'inactive')),
    paused_at timestamptz,
    paused_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.peer_mentors is
    'Volunteer peer mentors; status paused hides a mentor from matching.';

create table public.certifications (
    id uuid primary key default gen_random_uuid(),
    peer_mentor_id uuid not null references public.peer_mentors (id) on delete cascade,
    course_id uuid references public.courses (id),
    certificate_number text,
    issued_on date,
    expiry_date date not null,
    status text not null default 'active' check (status in ('active', 'paused', 'revoked')),
    paused_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on column public.certifications.expiry_date is
    'Valid through this organisation-local date; expired from the next day on.';
create index certifications_peer_mentor_id_idx on public.certifications (peer_mentor_id);
-- The specification's own index for the monitoring query ("add index on (expiry_date,
-- status) if not present"): the app has it.
create index certifications_expiry_date_status_idx on public.certifications (expiry_date, status);

create table public.coordinators (
    user_id uuid primary key,
    region text not null
);

alter table public.courses enable row level security;
alter table public.peer_mentors enable row level security;
alter table public.certifications enable row level security;
alter table public.coordinators enable row level security;

-- The course catalogue is public.
create policy courses_read on public.courses
    for select to anon, authenticated
    using (published);

-- A mentor reads and edits their own row; a coordinator reads the mentors of their region.
create policy peer_mentors_own_read on public.peer_mentors
    for select to authenticated
    using (user_id = (select auth.uid()));
create policy peer_mentors_own_update on public.peer_mentors
    for update to authenticated
    using (user_id = (select auth.uid()))
    with check (user_id = (select auth.uid()));
create policy peer_mentors_coordinator_read on public.peer_mentors
    for select to authenticated
    using (region in (select c.region from public.coordinators c where c.user_id = (select auth.uid())));

-- A mentor reads their own certifications and records a new one; a coordinator reads and
-- renews those of their region.
create policy certifications_own_read on public.certifications
    for select to authenticated
    using (peer_mentor_id in (select m.id from public.peer_mentors m where m.user_id = (select auth.uid())));
create policy certifications_own_insert on public.certifications
    for insert to authenticated
    with check (peer_mentor_id in (select m.id from public.peer_mentors m where m.user_id = (select auth.uid())));
create policy certifications_coordinator_all on public.certifications
    for all to authenticated
    using (peer_mentor_id in (
        select m.id from public.peer_mentors m
        join public.coordinators c on c.region = m.region
        where c.user_id = (select auth.uid())))
    with check (true);

create policy coordinators_own_read on public.coordinators
    for select to authenticated
    using (user_id = (select auth.uid()));

-- An RPC of the app's: the signed-in mentor's certifications by status.
create function public.my_certification_counts()
returns jsonb
language sql stable
security invoker
set search_path = ''
as $$
    select coalesce(jsonb_object_agg(s.status, s.n), '{}'::jsonb)
    from (select c.status, count(*) as n from public.certifications c group by c.status) s
$$;

insert into public.courses (title) values ('Grunnkurs likeperson'), ('Oppfriskning');

-- The app's migration history, as `supabase db push` records it in the app's project.
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
    version text not null primary key,
    statements text[],
    name text
);
insert into supabase_migrations.schema_migrations (version, statements, name) values
    ('20250115090000', '{}', 'app_init'),
    ('20250301120000', '{}', 'coordinators'),
    ('20261001080000', '{}', 'certificate_numbers');
