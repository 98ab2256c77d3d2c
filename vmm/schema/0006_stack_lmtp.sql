-- The stack's own LMTP service as a transport, where `vmm setup` last found it (one row,
-- from Runtime.lmtp_transport, which also renders Postfix's virtual_transport). A new
-- domain without a transport of its own gets it, and when VMM_LMTP_PORT or
-- VMM_DOVECOT_HOST changes, setup moves every domain and account on the old one along
-- (domains.move_stack_lmtp): until now each domain kept the literal default, and its
-- mail went to the old port. Transports stay stored literally, so that Postfix's lookup
-- reads nothing more.
CREATE TABLE stack_lmtp (
    transport text    NOT NULL,
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row)
);
INSERT INTO stack_lmtp (transport) VALUES ('lmtp:inet:dovecot:24');
