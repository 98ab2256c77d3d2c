-- The submission limits a postmaster stored (`vmm configset submission.*`), which the
-- policy service (vmm/policy.py, Postfix's policy delegation) enforces per login. An
-- option not stored takes vmm's default, kept in one place: vmm/settings.py.
-- Parameters: none.
-- Result: (name, value) of each stored submission.* option.
-- GRANT EXECUTE ON FUNCTION postfix_submission_settings() TO postfix;
CREATE FUNCTION postfix_submission_settings()
RETURNS TABLE (name text, value text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT s.name, s.value FROM settings s WHERE s.name LIKE 'submission.%'
$$;

GRANT EXECUTE ON FUNCTION postfix_submission_settings() TO postfix;
