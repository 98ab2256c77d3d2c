-- Sub-addressing (user+tag@domain, VMM_RECIPIENT_DELIMITER): Postfix looks up
-- "kim+lists@d" before "kim@d", and the catch-all of 0005's alias map would answer the
-- first lookup for every tagged address of an account. The map now takes the delimiter
-- (rendered into Postfix's query from the runtime) and answers nothing for a tagged
-- address whose base is an account, alias or relocated user, so that Postfix goes on to
-- the base. An address without the delimiter is answered as before.
DROP FUNCTION postfix_virtual_alias_map(text, text);

-- Postfix: virtual_alias_maps. Parameters: local part (%u), domain (%d), the recipient
-- delimiter ('' when sub-addressing is off). Result: the destinations, as 0005's.
-- GRANT EXECUTE ON FUNCTION postfix_virtual_alias_map(text, text, text) TO postfix;
CREATE FUNCTION postfix_virtual_alias_map(the_local text, the_domain text, the_delimiter text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
DECLARE
    lp  text := lower(the_local);
    dom text := lower(the_domain);
    base text;
    domain_gid integer;
    at_primary boolean;
    destination text;
    found_any boolean := false;
BEGIN
    SELECT n.gid, n.is_primary INTO domain_gid, at_primary FROM domain_name n WHERE n.domainname = dom;
    IF domain_gid IS NULL THEN
        RETURN;
    END IF;
    -- An account: at its primary name nothing to rewrite; in an alias domain, rewritten
    -- to its canonical address.
    IF EXISTS (SELECT 1 FROM account_address a WHERE a.domainname = dom AND a.local_part = lp) THEN
        IF NOT at_primary THEN
            RETURN QUERY SELECT a.canonical
              FROM account_address a WHERE a.domainname = dom AND a.local_part = lp;
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

GRANT EXECUTE ON FUNCTION postfix_virtual_alias_map(text, text, text) TO postfix;
