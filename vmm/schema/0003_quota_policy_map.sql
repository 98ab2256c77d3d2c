-- Which recipients Postfix asks Dovecot's quota-status about (a check_recipient_access
-- map naming the restriction class quota_policy): only accounts with a storage or
-- message limit. An unlimited mailbox cannot be full, and skipping the policy round trip
-- (a userdb lookup and a quota computation in Dovecot) saves every such delivery work.
-- Parameters: local part (%u), domain (%d) of the recipient.
-- Result: 'quota_policy' for an account (also in an alias domain) with a limit.
-- GRANT EXECUTE ON FUNCTION postfix_quota_policy_map(text, text) TO postfix;
CREATE FUNCTION postfix_quota_policy_map(the_local text, the_domain text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY
    SELECT 'quota_policy'::text
      FROM domain_name n
      JOIN domain_data d ON d.gid = n.gid
      JOIN users u ON u.gid = n.gid AND u.local_part = lower(the_local)
     WHERE n.domainname = lower(the_domain)
       AND (coalesce(u.quota_bytes, d.quota_bytes) > 0 OR coalesce(u.quota_messages, d.quota_messages) > 0);
END
$$;

GRANT EXECUTE ON FUNCTION postfix_quota_policy_map(text, text) TO postfix;
