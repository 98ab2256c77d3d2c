-- The names the web service's certificate covers (vmm/acme.py): every domain name
-- hosted here, primary and alias, in a stable order.
-- Result: (domainname).
-- GRANT EXECUTE ON FUNCTION web_domains() TO web;
CREATE FUNCTION web_domains()
RETURNS TABLE (domainname text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT n.domainname FROM domain_name n ORDER BY n.domainname
$$;

GRANT EXECUTE ON FUNCTION web_domains() TO web;
