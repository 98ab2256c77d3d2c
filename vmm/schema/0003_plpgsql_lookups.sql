-- The daemons' lookups as PL/pgSQL: PostgreSQL re-plans the body of a LANGUAGE sql
-- function on every call when it cannot inline it (and SECURITY DEFINER functions are
-- never inlined), which cost 1-2.5 ms per lookup under load; PL/pgSQL keeps the plan
-- for the life of the connection. Same names, parameters, results and GRANTs.

CREATE OR REPLACE FUNCTION postfix_virtual_mailbox_domain(the_domain text) RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT 'OK'::text FROM domain_name WHERE domainname = lower(the_domain);
END
$$;

CREATE OR REPLACE FUNCTION postfix_virtual_mailbox_map(the_local text, the_domain text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY
    SELECT d.domaindir || '/' || u.uid
      FROM domain_name n
      JOIN domain_data d ON d.gid = n.gid
      JOIN users u ON u.gid = n.gid AND u.local_part = lower(the_local)
     WHERE n.domainname = lower(the_domain);
END
$$;

CREATE OR REPLACE FUNCTION postfix_relocated_map(the_local text, the_domain text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY
    SELECT r.destination
      FROM domain_name n JOIN relocated r ON r.gid = n.gid AND r.address = lower(the_local)
     WHERE n.domainname = lower(the_domain);
END
$$;

CREATE OR REPLACE FUNCTION postfix_transport_map(the_local text, the_domain text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY
    SELECT coalesce(u.transport, d.transport)
      FROM domain_name n
      JOIN domain_data d ON d.gid = n.gid
      JOIN users u ON u.gid = n.gid AND u.local_part = lower(the_local)
     WHERE n.domainname = lower(the_domain);
END
$$;

CREATE OR REPLACE FUNCTION postfix_uid_map(the_local text, the_domain text) RETURNS SETOF integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY
    SELECT u.uid
      FROM domain_name n JOIN users u ON u.gid = n.gid AND u.local_part = lower(the_local)
     WHERE n.domainname = lower(the_domain);
END
$$;

CREATE OR REPLACE FUNCTION postfix_gid_map(the_local text, the_domain text) RETURNS SETOF integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY
    SELECT u.gid
      FROM domain_name n JOIN users u ON u.gid = n.gid AND u.local_part = lower(the_local)
     WHERE n.domainname = lower(the_domain);
END
$$;

CREATE OR REPLACE FUNCTION postfix_sender_login_map(the_local text, the_domain text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY
    WITH sender_domain AS (
        SELECT n.gid, p.domainname AS primary_name
          FROM domain_name n JOIN domain_name p ON p.gid = n.gid AND p.is_primary
         WHERE n.domainname = lower(the_domain)
    )
    SELECT u.local_part || '@' || s.primary_name
      FROM sender_domain s JOIN users u ON u.gid = s.gid AND u.local_part = lower(the_local)
    UNION
    SELECT u.local_part || '@' || p.domainname
      FROM sender_domain s
      JOIN alias a ON a.gid = s.gid AND a.address = lower(the_local)
      JOIN domain_name n ON n.domainname = split_part(a.destination, '@', 2)
      JOIN domain_name p ON p.gid = n.gid AND p.is_primary
      JOIN users u ON u.gid = n.gid AND u.local_part = split_part(a.destination, '@', 1);
END
$$;

CREATE OR REPLACE FUNCTION dovecot_password(the_local text, the_domain text, the_protocol text)
RETURNS TABLE ("user" text, password text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY
    SELECT u.local_part || '@' || p.domainname, u.passwd
      FROM domain_name n
      JOIN domain_data d ON d.gid = n.gid
      JOIN domain_name p ON p.gid = n.gid AND p.is_primary
      JOIN users u ON u.gid = n.gid AND u.local_part = lower(the_local)
     WHERE n.domainname = lower(the_domain)
       AND CASE lower(the_protocol)
             WHEN 'imap' THEN coalesce(u.imap, d.imap)
             WHEN 'pop3' THEN coalesce(u.pop3, d.pop3)
             WHEN 'smtp' THEN coalesce(u.smtp, d.smtp)
             WHEN 'sieve' THEN coalesce(u.sieve, d.sieve)
             WHEN 'managesieve' THEN coalesce(u.sieve, d.sieve)
             ELSE false
           END;
END
$$;

CREATE OR REPLACE FUNCTION dovecot_user(the_local text, the_domain text)
RETURNS TABLE (home text, uid integer, gid integer, quota_bytes bigint, quota_messages bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY
    SELECT d.domaindir || '/' || u.uid, u.uid, u.gid,
           coalesce(u.quota_bytes, d.quota_bytes), coalesce(u.quota_messages, d.quota_messages)
      FROM domain_name n
      JOIN domain_data d ON d.gid = n.gid
      JOIN users u ON u.gid = n.gid AND u.local_part = lower(the_local)
     WHERE n.domainname = lower(the_domain);
END
$$;

CREATE OR REPLACE FUNCTION dovecot_user_list() RETURNS TABLE ("user" text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY
    SELECT u.local_part || '@' || p.domainname
      FROM users u JOIN domain_name p ON p.gid = u.gid AND p.is_primary;
END
$$;
