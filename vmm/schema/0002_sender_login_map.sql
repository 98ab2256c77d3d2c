-- Who may send as an address after SMTP AUTH (Postfix smtpd_sender_login_maps with
-- reject_sender_login_mismatch on the submission ports).
-- Parameters: local part (%u), domain (%d) of the envelope sender.
-- Result: the login names (canonical account addresses) that own it: the account itself,
-- also when written in an alias domain; for an alias, the accounts it forwards to.
-- GRANT EXECUTE ON FUNCTION postfix_sender_login_map(text, text) TO postfix;
CREATE FUNCTION postfix_sender_login_map(the_local text, the_domain text)
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

GRANT EXECUTE ON FUNCTION postfix_sender_login_map(text, text) TO postfix;
