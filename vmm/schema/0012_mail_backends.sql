-- Mail stores partitioned by user (issue 20): Dovecot backends, each with its own mail
-- volume, and every account pinned to one of them. A proxy tier in front (IMAP, POP3,
-- ManageSieve, and LMTP for Postfix) asks dovecot_proxy() where a user's mail is, so every
-- login and every delivery reaches the one backend that holds it.
--
-- A single-host stack has no backends: users.backend stays NULL and its one Dovecot
-- serves everyone, as before.
CREATE TABLE mail_backend (
    -- The name and host are checked by vmm/backends.py, their one writer.
    name      text PRIMARY KEY,
    -- Where the proxies reach it: a host name or address that Dovecot's proxy connects to.
    host      text NOT NULL UNIQUE,
    -- New accounts are placed only on accepting backends (vmm/backends.py).
    accepting boolean NOT NULL DEFAULT true
);

ALTER TABLE users ADD COLUMN backend text REFERENCES mail_backend (name) ON UPDATE CASCADE;
-- Placement counts the accounts of each backend.
CREATE INDEX users_backend ON users (backend);

-- The account at an address (0005) also names its backend.
CREATE OR REPLACE VIEW account_address AS
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
       u.smtp IS NOT NULL AS own_services,
       u.backend
  FROM users u
  JOIN domain_name n ON n.gid = u.gid
  LEFT JOIN domain_data d ON d.gid = u.gid;

-- The proxy tier's passdb (IMAP, POP3, ManageSieve logins, LMTP deliveries, and the
-- SMTP AUTH that Postfix asks of it). Parameters: local part, domain, protocol. Result:
-- the canonical user, its password (the proxy checks it before it connects; the backend
-- checks it again), and proxy/host naming the backend. A login finds a row only where
-- dovecot_password (0010) finds one, which holds the rule of which services an account
-- may use; a delivery (lmtp) is no login and is always proxied. An account on no
-- backend finds no row: in a stack with backends every account has one (vmm/backends.py).
-- GRANT EXECUTE ON FUNCTION dovecot_proxy(text, text, text) TO dovecot;
CREATE FUNCTION dovecot_proxy(the_local text, the_domain text, the_protocol text)
RETURNS TABLE ("user" text, password text, proxy text, host text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT a.canonical, a.passwd, 'y'::text, b.host
      FROM account_address a JOIN mail_backend b ON b.name = a.backend
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local)
       AND (lower(the_protocol) = 'lmtp'
            OR EXISTS (SELECT 1 FROM dovecot_password(the_local, the_domain, the_protocol, '{}')));
END
$$;
GRANT EXECUTE ON FUNCTION dovecot_proxy(text, text, text) TO dovecot;
