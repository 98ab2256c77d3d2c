-- "The account at an address", once: every name an account is reached under (its local
-- part at its domain's primary name and at each alias domain's), with what is in force
-- for it (the account's own quota, services and transport, else its domain's), its home
-- (the domain's directory / uid) and its canonical address. Every lookup of an account,
-- Postfix's, Dovecot's and vmm's own (accounts.py), reads this view; the functions below
-- keep their names, parameters and results.
-- A lookup pays only for the columns it reads: the domain is a LEFT JOIN on its primary
-- key (the foreign key guarantees the row), which PostgreSQL leaves out when none of its
-- columns is read, and the primary name a subquery, evaluated only for `canonical`.
CREATE VIEW account_address AS
SELECT u.uid, u.gid, u.local_part, n.domainname, n.is_primary,
       u.local_part || '@' || (SELECT p.domainname FROM domain_name p
                                WHERE p.gid = u.gid AND p.is_primary) AS canonical,
       d.domaindir || '/' || u.uid AS home,
       u.passwd, u.name, u.note,
       coalesce(u.transport, d.transport) AS transport,
       u.transport IS NOT NULL AS own_transport,
       coalesce(u.quota_bytes, d.quota_bytes) AS quota_bytes,
       coalesce(u.quota_messages, d.quota_messages) AS quota_messages,
       u.quota_bytes IS NOT NULL AS own_quota,
       coalesce(u.smtp, d.smtp) AS smtp, coalesce(u.pop3, d.pop3) AS pop3,
       coalesce(u.imap, d.imap) AS imap, coalesce(u.sieve, d.sieve) AS sieve,
       u.smtp IS NOT NULL AS own_services
  FROM users u
  JOIN domain_name n ON n.gid = u.gid
  LEFT JOIN domain_data d ON d.gid = u.gid;

CREATE OR REPLACE FUNCTION postfix_virtual_mailbox_map(the_local text, the_domain text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT a.home FROM account_address a
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local);
END
$$;

CREATE OR REPLACE FUNCTION postfix_virtual_alias_map(the_local text, the_domain text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
DECLARE
    lp  text := lower(the_local);
    dom text := lower(the_domain);
    domain_gid integer;
    at_primary boolean;
    destination text;
    found_any boolean := false;
BEGIN
    SELECT n.gid, n.is_primary INTO domain_gid, at_primary FROM domain_name n WHERE n.domainname = dom;
    IF domain_gid IS NULL THEN
        RETURN;
    END IF;
    -- An account: at its primary name nothing to rewrite; in an alias domain, rewritten
    -- to its canonical address.
    IF EXISTS (SELECT 1 FROM account_address a WHERE a.domainname = dom AND a.local_part = lp) THEN
        IF NOT at_primary THEN
            RETURN QUERY SELECT a.canonical
              FROM account_address a WHERE a.domainname = dom AND a.local_part = lp;
        END IF;
        RETURN;
    END IF;
    FOR destination IN
        SELECT replace(replace(replace(a.destination, '%n', lp), '%d', dom), '%=', lp || '=' || dom)
          FROM alias a WHERE a.gid = domain_gid AND a.address = lp
    LOOP
        found_any := true;
        RETURN NEXT destination;
    END LOOP;
    IF found_any OR EXISTS (SELECT 1 FROM relocated r WHERE r.gid = domain_gid AND r.address = lp) THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT replace(replace(replace(c.destination, '%n', lp), '%d', dom), '%=', lp || '=' || dom)
          FROM alias c WHERE c.gid = domain_gid AND c.address = '';
END
$$;

CREATE OR REPLACE FUNCTION postfix_transport_map(the_local text, the_domain text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT a.transport FROM account_address a
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local);
END
$$;

CREATE OR REPLACE FUNCTION postfix_uid_map(the_local text, the_domain text) RETURNS SETOF integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT a.uid FROM account_address a
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local);
END
$$;

CREATE OR REPLACE FUNCTION postfix_gid_map(the_local text, the_domain text) RETURNS SETOF integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT a.gid FROM account_address a
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local);
END
$$;

CREATE OR REPLACE FUNCTION postfix_sender_login_map(the_local text, the_domain text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY
    SELECT a.canonical FROM account_address a
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local)
    UNION
    SELECT t.canonical
      FROM domain_name n
      JOIN alias al ON al.gid = n.gid AND al.address = lower(the_local)
      JOIN account_address t
        ON t.domainname = split_part(al.destination, '@', 2)
       AND t.local_part = split_part(al.destination, '@', 1)
     WHERE n.domainname = lower(the_domain);
END
$$;

CREATE OR REPLACE FUNCTION postfix_quota_policy_map(the_local text, the_domain text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT 'quota_policy'::text FROM account_address a
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local)
       AND (a.quota_bytes > 0 OR a.quota_messages > 0);
END
$$;

CREATE OR REPLACE FUNCTION dovecot_password(the_local text, the_domain text, the_protocol text)
RETURNS TABLE ("user" text, password text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT a.canonical, a.passwd FROM account_address a
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local)
       AND CASE lower(the_protocol)
             WHEN 'imap' THEN a.imap
             WHEN 'pop3' THEN a.pop3
             WHEN 'smtp' THEN a.smtp
             WHEN 'sieve' THEN a.sieve
             WHEN 'managesieve' THEN a.sieve
             ELSE false
           END;
END
$$;

CREATE OR REPLACE FUNCTION dovecot_user(the_local text, the_domain text)
RETURNS TABLE (home text, uid integer, gid integer, quota_bytes bigint, quota_messages bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT a.home, a.uid, a.gid, a.quota_bytes, a.quota_messages FROM account_address a
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local);
END
$$;

CREATE OR REPLACE FUNCTION dovecot_user_list() RETURNS TABLE ("user" text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT a.canonical FROM account_address a WHERE a.is_primary;
END
$$;
