-- Fewer lookups a delivery (issue 19; bench/RESULTS.md has the counts).
--
-- Postfix's address resolver (trivial-rewrite) asked relocated_maps about every
-- recipient it resolved, once for smtpd and again for qmgr: two queries a recipient for
-- a table that is nearly always empty. It asks the transport map about each of them
-- anyway, and a relocated user's "5.1.6 User has moved to ..." is what the resolver
-- made of relocated_maps: the error transport with that text. The transport map now
-- answers it for a relocated address, and Postfix has no relocated_maps any more.
--
-- smtpd's check of a recipient (reject_unlisted_recipient) stops at the first map that
-- knows the address, and asks the alias map before the mailbox map. The alias map now
-- answers for an account with the account's own address (virtual(5)'s idiom; at an
-- alias domain with its canonical address, as before), so smtpd no longer asks the
-- mailbox map as well; cleanup's rewriting to the same address changes nothing. Except
-- for an account whose transport refuses mail (vmm's `usertransport ADDRESS
-- "retry:4.0.0 ..."` or error:): smtpd refuses at RCPT by the transport only an
-- address that no alias map knows.

-- Postfix: transport_maps. Parameters: local part (%u), domain (%d). Result: the
-- account's transport (its own or its domain's); for a relocated user, the error
-- transport with the new address.
DROP FUNCTION postfix_relocated_map(text, text);

CREATE OR REPLACE FUNCTION postfix_transport_map(the_local text, the_domain text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT a.transport FROM account_address a
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local);
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'error:5.1.6 User has moved to ' || r.destination
          FROM domain_name n JOIN relocated r ON r.gid = n.gid AND r.address = lower(the_local)
         WHERE n.domainname = lower(the_domain);
    END IF;
END
$$;

-- Postfix: virtual_alias_maps, as 0008's, but an account answers with its canonical
-- address at every name of its domain, at the primary one too unless its transport
-- refuses mail there.
CREATE OR REPLACE FUNCTION postfix_virtual_alias_map(the_local text, the_domain text, the_delimiter text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
DECLARE
    lp  text := lower(the_local);
    dom text := lower(the_domain);
    base text;
    domain_gid integer;
    account record;
    destination text;
    found_any boolean := false;
BEGIN
    SELECT n.gid INTO domain_gid FROM domain_name n WHERE n.domainname = dom;
    IF domain_gid IS NULL THEN
        RETURN;
    END IF;
    SELECT a.canonical, a.is_primary, a.transport INTO account
      FROM account_address a WHERE a.domainname = dom AND a.local_part = lp;
    IF FOUND THEN
        IF NOT account.is_primary OR split_part(account.transport, ':', 1) NOT IN ('error', 'retry') THEN
            RETURN NEXT account.canonical;
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
    -- A tagged address of someone here: Postfix's next lookup, of the base, finds them.
    IF the_delimiter <> '' AND position(the_delimiter IN lp) > 1 THEN
        base := split_part(lp, the_delimiter, 1);
        IF EXISTS (SELECT 1 FROM account_address a WHERE a.domainname = dom AND a.local_part = base)
           OR EXISTS (SELECT 1 FROM alias a WHERE a.gid = domain_gid AND a.address = base)
           OR EXISTS (SELECT 1 FROM relocated r WHERE r.gid = domain_gid AND r.address = base) THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
        SELECT replace(replace(replace(c.destination, '%n', lp), '%d', dom), '%=', lp || '=' || dom)
          FROM alias c WHERE c.gid = domain_gid AND c.address = '';
END
$$;
