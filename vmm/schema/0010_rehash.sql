-- Rehash on login: an account whose stored hash is in a legacy scheme (moved in from
-- Virtual Mail Manager, or imported) gets its password hashed again in the
-- installation's scheme when it next logs in with it (vmm/rehash.py, which Dovecot's
-- auth worker runs). Which schemes are legacy is vmm's rule (passwords.LEGACY_SCHEMES);
-- Dovecot passes the list with each lookup.

-- The scheme of a stored {SCHEME.ENC}hash, without its encoding suffix: 'SHA512' for
-- '{SHA512.HEX}...' (as passwords.scheme_of).
CREATE FUNCTION password_scheme(stored text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT upper(split_part(split_part(substr(stored, 2), '}', 1), '.', 1))
$$;

-- Dovecot: passdb, as before, plus `rehash`: for an account whose hash is in one of the
-- `legacy` schemes, a token naming the row as it is now (its uid and row version), else
-- NULL (Dovecot then leaves the field out). The token is no secret derived from the hash.
-- GRANT EXECUTE ON FUNCTION dovecot_password(text, text, text, text[]) TO dovecot;
DROP FUNCTION dovecot_password(text, text, text);
CREATE FUNCTION dovecot_password(the_local text, the_domain text, the_protocol text, legacy text[])
RETURNS TABLE ("user" text, password text, rehash text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT a.canonical, a.passwd,
           CASE WHEN password_scheme(a.passwd) = ANY (legacy)
                THEN (SELECT u.uid || '/' || u.xmin FROM users u WHERE u.uid = a.uid) END
      FROM account_address a
     WHERE a.domainname = lower(the_domain) AND a.local_part = lower(the_local)
       AND CASE lower(the_protocol)
             WHEN 'imap' THEN a.imap
             WHEN 'pop3' THEN a.pop3
             WHEN 'smtp' THEN a.smtp
             WHEN 'sieve' THEN a.sieve
             WHEN 'managesieve' THEN a.sieve
             ELSE false
           END;
END
$$;

-- The options that choose the new hash: the scheme and its costs.
-- GRANT EXECUTE ON FUNCTION dovecot_password_policy() TO dovecot;
CREATE FUNCTION dovecot_password_policy() RETURNS TABLE (name text, value text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT s.name, s.value FROM settings s
     WHERE s.name IN ('misc.password_scheme', 'misc.crypt_blowfish_rounds',
                      'misc.crypt_sha256_rounds', 'misc.crypt_sha512_rounds')
$$;

-- Store the new hash if the row is still as the token names it: a password the
-- postmaster changed since the login was checked (or a login answered from Dovecot's
-- cache) is left alone. True when stored.
-- GRANT EXECUTE ON FUNCTION dovecot_rehash(text, text) TO dovecot;
CREATE FUNCTION dovecot_rehash(token text, new_hash text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    UPDATE users SET passwd = new_hash
     WHERE uid = split_part(token, '/', 1)::bigint AND xmin::text = split_part(token, '/', 2);
    RETURN FOUND;
END
$$;

GRANT EXECUTE ON FUNCTION
    dovecot_password(text, text, text, text[]),
    dovecot_password_policy(),
    dovecot_rehash(text, text)
TO dovecot;
