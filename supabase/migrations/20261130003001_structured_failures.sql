-- Issue 11: the per-row failure report carries structured fields, not a message cut to 500
-- characters. The cut happened before any redaction could see the text, so a row literal lost
-- its ")" (and escaped the row rule) and a national id straddling the cut was logged as its
-- first digits. Now each failure reports the SQLSTATE, the names Postgres' diagnostics give
-- (constraint, schema, table, column, datatype), the innermost function of the error's CONTEXT,
-- and the message whole, with the failing mentor's own name (and each part of it), national id
-- and email replaced by value, ignoring case. The job reduces that message to its template
-- (certexpiry.log_template) before anything is logged; nothing is cut here.
-- Redefines only certexpiry.apply_effects_isolated (issue 11's range owns its failure report).

create or replace function certexpiry.redact_mentor_values(p_text text, p_peer_mentor_id uuid)
returns text
language plpgsql stable
as $$
declare
    v_mentor record;
    v_value text;
    v_word boolean;
    v_pattern text;
    v_text text := p_text;
begin
    select m.full_name, m.national_id, m.email into v_mentor
    from public.peer_mentors m where m.id = p_peer_mentor_id;
    if not found or v_text is null then
        return v_text;
    end if;
    -- Whole values first, longest first, wherever they stand (an id glued to letters is still
    -- the id); then each part of the name of 3 characters or more, as a whole word only ("Ola"
    -- is no part of "violates"). Case-insensitively, the value's regex metacharacters escaped.
    for v_value, v_word in
        select v, w from (
            select v_mentor.full_name as v, false as w
            union all select v_mentor.national_id, false
            union all select v_mentor.email, false
            union all select p, true
                from regexp_split_to_table(coalesce(v_mentor.full_name, ''), '\s+') p
                where length(p) >= 3
        ) vals
        where v is not null and length(btrim(v)) > 0
        order by w, length(v) desc
    loop
        v_pattern := regexp_replace(v_value, '([.\\+*?\[^\]$(){}=!<>|:#/-])', '\\\1', 'g');
        if v_word then
            v_pattern := '(?<![[:alnum:]_])' || v_pattern || '(?![[:alnum:]_])';
        end if;
        v_text := regexp_replace(v_text, v_pattern, '[REDACTED:mentor]', 'gi');
    end loop;
    return v_text;
end
$$;

create or replace function certexpiry.apply_effects_isolated(
    p_run_id uuid, p_today date, p_reminder_days integer[], p_certification_ids uuid[])
returns jsonb
language plpgsql
as $$
declare
    v_half integer;
    v_row record;
    v_sqlstate text;
    v_message text;
    v_constraint text;
    v_schema text;
    v_table text;
    v_column text;
    v_datatype text;
    v_context text;
begin
    begin
        return certexpiry.apply_effects(p_run_id, p_today, p_reminder_days, p_certification_ids)
            || jsonb_build_object('failures', 0, 'failures_detail', '[]'::jsonb);
    exception when others then
        get stacked diagnostics v_sqlstate = returned_sqlstate, v_message = message_text,
            v_constraint = constraint_name, v_schema = schema_name, v_table = table_name,
            v_column = column_name, v_datatype = pg_datatype_name, v_context = pg_exception_context;
    end;
    if cardinality(p_certification_ids) = 1 then
        select c.id, c.peer_mentor_id, c.expiry_date into v_row
        from public.certifications c where c.id = p_certification_ids[1];
        return jsonb_build_object('failures', 1, 'failures_detail', jsonb_build_array(jsonb_build_object(
            'certification_id', p_certification_ids[1],
            'peer_mentor_id', v_row.peer_mentor_id,
            'operation', case when certexpiry.is_expired(v_row.expiry_date, p_today)
                              then 'auto_pause' else 'reminder' end,
            'sqlstate', v_sqlstate,
            'constraint_name', nullif(v_constraint, ''),
            'schema_name', nullif(v_schema, ''),
            'table_name', nullif(v_table, ''),
            'column_name', nullif(v_column, ''),
            'datatype_name', nullif(v_datatype, ''),
            'routine', substring(v_context from '(?:PL/pgSQL|SQL) function ([A-Za-z0-9_$."]+)'),
            'message', certexpiry.redact_mentor_values(v_message, v_row.peer_mentor_id))));
    end if;
    v_half := cardinality(p_certification_ids) / 2;
    return certexpiry.merge_effects(
        certexpiry.apply_effects_isolated(p_run_id, p_today, p_reminder_days, p_certification_ids[1:v_half]),
        certexpiry.apply_effects_isolated(p_run_id, p_today, p_reminder_days,
                                          p_certification_ids[v_half + 1:cardinality(p_certification_ids)]));
end
$$;

revoke all on function certexpiry.redact_mentor_values(text, uuid) from public;
grant execute on function certexpiry.redact_mentor_values(text, uuid) to service_role;
