-- The stack's own LMTP service as a transport, one row that `vmm setup` rewrites on every
-- start from the runtime values that also render Postfix's virtual_transport
-- (Runtime.lmtp_transport). A domain whose transport is NULL delivers there, so changing
-- VMM_LMTP_PORT (or VMM_DOVECOT_HOST) moves every such domain along with the stack; until
-- now each domain stored the literal default and kept the old port.
CREATE TABLE stack_lmtp (
    transport text    NOT NULL,
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row)
);
INSERT INTO stack_lmtp (transport) VALUES ('lmtp:inet:dovecot:24');

ALTER TABLE domain_data ALTER COLUMN transport DROP NOT NULL;
-- Whoever writes a domain (domainadd, domaintransport, an import): the stack's LMTP
-- itself is stored as NULL, so that the domain follows it.
CREATE FUNCTION domain_data_follow_stack_lmtp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.transport := nullif(NEW.transport, (SELECT s.transport FROM stack_lmtp s));
    RETURN NEW;
END
$$;
CREATE TRIGGER follow_stack_lmtp BEFORE INSERT OR UPDATE OF transport ON domain_data
    FOR EACH ROW EXECUTE FUNCTION domain_data_follow_stack_lmtp();
-- The old default, stored literally: the stack's LMTP as it was.
UPDATE domain_data SET transport = NULL WHERE transport = 'lmtp:inet:dovecot:24';

-- 0005's view, the transport in force now ending at the stack's LMTP.
CREATE OR REPLACE VIEW account_address AS
SELECT u.uid, u.gid, u.local_part, n.domainname, n.is_primary,
       u.local_part || '@' || (SELECT p.domainname FROM domain_name p
                                WHERE p.gid = u.gid AND p.is_primary) AS canonical,
       d.domaindir || '/' || u.uid AS home,
       u.passwd, u.name, u.note,
       coalesce(u.transport, d.transport, (SELECT s.transport FROM stack_lmtp s)) AS transport,
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
