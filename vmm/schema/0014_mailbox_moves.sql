-- `vmm usermove` (vmm/backends.py) holds an account's mail while its mailbox changes
-- backend: users.moving_to names the destination for the seconds of the final copy and
-- the switch. Meanwhile the proxies' lookup fails for that account, which Dovecot
-- answers as a temporary failure: Postfix defers the deliveries (LMTP 451) and retries,
-- logins are refused for now. Nothing bounces, nothing lands on the old backend after
-- its last copy. A move that was interrupted shows here (and in `userinfo`) and holds
-- the mail until `usermove` runs again.
ALTER TABLE users ADD COLUMN moving_to text REFERENCES mail_backend (name) ON UPDATE CASCADE;

-- The account at an address (0013) also names a move in progress.
CREATE OR REPLACE VIEW account_address AS
SELECT u.uid, u.gid, u.local_part, n.domainname, n.is_primary,
       u.local_part || '@' || (SELECT p.domainname FROM domain_name p
                                WHERE p.gid = u.gid AND p.is_primary) AS canonical,
       CASE WHEN u.backend IS NULL THEN d.domaindir || '/' || u.uid
            ELSE '/srv/mail/homes/' || u.uid END AS home,
       u.passwd, u.name, u.note,
       coalesce(u.transport, d.transport) AS transport,
       u.transport IS NOT NULL AS own_transport,
       coalesce(u.quota_bytes, d.quota_bytes) AS quota_bytes,
       coalesce(u.quota_messages, d.quota_messages) AS quota_messages,
       u.quota_bytes IS NOT NULL AS own_quota,
       coalesce(u.smtp, d.smtp) AS smtp, coalesce(u.pop3, d.pop3) AS pop3,
       coalesce(u.imap, d.imap) AS imap, coalesce(u.sieve, d.sieve) AS sieve,
       u.smtp IS NOT NULL AS own_services,
       u.backend, u.moving_to
  FROM users u
  JOIN domain_name n ON n.gid = u.gid
  LEFT JOIN domain_data d ON d.gid = u.gid;

CREATE OR REPLACE FUNCTION dovecot_proxy(the_local text, the_domain text, the_protocol text)
RETURNS TABLE ("user" text, password text, proxy text, host text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
DECLARE
    found record;
BEGIN
    FOR found IN SELECT a.canonical, a.passwd, b.host, a.moving_to
      FROM account_address a JOIN mail_backend b ON b.name = a.backend
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local)
       AND (lower(the_protocol) = 'lmtp'
            OR EXISTS (SELECT 1 FROM dovecot_password(the_local, the_domain, the_protocol, '{}')))
    LOOP
        IF found.moving_to IS NOT NULL THEN
            RAISE EXCEPTION 'the mailbox of %@% is moving to the backend %',
                the_local, the_domain, found.moving_to USING ERRCODE = 'lock_not_available';
        END IF;
        "user" := found.canonical;
        password := found.passwd;
        proxy := 'y';
        host := found.host;
        RETURN NEXT;
    END LOOP;
END
$$;
