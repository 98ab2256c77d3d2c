-- 0006 kept a domain on the stack's LMTP as NULL and had every lookup read stack_lmtp:
-- a scan of that one-row table for each transport lookup (measured: 5,820 sequential
-- scans in `make bench`, 0 before). Transports are stored literally again, and `vmm
-- setup` moves every domain and account on the old stack LMTP to the new one when
-- VMM_LMTP_PORT or VMM_DOVECOT_HOST changes (domains.move_stack_lmtp); stack_lmtp keeps
-- where it was at the last start.
DROP TRIGGER follow_stack_lmtp ON domain_data;
DROP FUNCTION domain_data_follow_stack_lmtp();
UPDATE domain_data SET transport = (SELECT s.transport FROM stack_lmtp s) WHERE transport IS NULL;
ALTER TABLE domain_data ALTER COLUMN transport SET NOT NULL;

-- 0005's view again.
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
       u.smtp IS NOT NULL AS own_services
  FROM users u
  JOIN domain_name n ON n.gid = u.gid
  LEFT JOIN domain_data d ON d.gid = u.gid;
