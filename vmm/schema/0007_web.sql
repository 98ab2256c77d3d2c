-- The web service (vmm/web.py): mail clients' autoconfiguration and the MTA-STS policy.
-- Its role, web (images/postgres), may call these two functions and nothing else.

-- What a mail client may be configured for: the account's services when the address
-- is an account (by any of its names), else its domain's; no row for a domain not
-- hosted here.
-- Parameters: local part ('' for the domain alone), domain (ACE).
-- Result: (smtp, pop3, imap, sieve).
-- GRANT EXECUTE ON FUNCTION web_client_services(text, text) TO web;
CREATE FUNCTION web_client_services(the_local text, the_domain text)
RETURNS TABLE (smtp boolean, pop3 boolean, imap boolean, sieve boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT a.smtp, a.pop3, a.imap, a.sieve FROM account_address a
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local);
    IF NOT FOUND THEN
        RETURN QUERY SELECT d.smtp, d.pop3, d.imap, d.sieve
          FROM domain_name n JOIN domain_data d ON d.gid = n.gid
         WHERE n.domainname = lower(the_domain);
    END IF;
END
$$;

-- The stored options the web service acts on; an option not stored takes vmm's default
-- (vmm/settings.py).
-- Result: (name, value) of each stored mta_sts.* option.
-- GRANT EXECUTE ON FUNCTION web_settings() TO web;
CREATE FUNCTION web_settings()
RETURNS TABLE (name text, value text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT s.name, s.value FROM settings s WHERE s.name LIKE 'mta\_sts.%'
$$;

GRANT EXECUTE ON FUNCTION web_client_services(text, text), web_settings() TO web;
