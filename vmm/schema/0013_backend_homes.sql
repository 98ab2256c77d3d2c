-- An account on a mail backend has its home in that backend's own mail volume, where
-- no domain directory exists: nothing but that Dovecot writes there, and the vmm
-- command that makes domain directories does not reach it (another machine, in a
-- swarm). So its home is /srv/mail/homes/UID, which the backend's Dovecot makes at the
-- first delivery or login as the account itself: the backend's entrypoint keeps
-- homes/ root's, sticky and unlistable (1733), so an account makes its own directory
-- there and can neither list nor remove another's. Dovecot's userdb (dovecot_user),
-- the proxy and `userinfo` read the home from this view.
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
       u.backend
  FROM users u
  JOIN domain_name n ON n.gid = u.gid
  LEFT JOIN domain_data d ON d.gid = u.gid;
