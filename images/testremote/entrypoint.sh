#!/bin/sh
# A receiving MTA for remote.test (and mismatch.test, whose TLSA record the tests get
# wrong, faraway.test, which has no DNS records: only the smarthost path reaches it, and
# sts.test and plain.test, with and without an MTA-STS policy) with its own self-signed
# certificate, which DANE's TLSA records name and opportunistic TLS does not check; mail
# is stored under /var/mail/remote/Maildir. Port 587 takes mail from the login
# relay@remote.test (password "relay password") over TLS. Port 443 serves sts.test's
# MTA-STS policy ("enforce": verified TLS, which this certificate fails) as
# mta-sts.sts.test, with a certificate of the tests' CA (/etc/testremote).
set -eu
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mx.remote.test" \
    -keyout /etc/postfix/key.pem -out /etc/postfix/cert.pem 2>/dev/null
install -d -o 5000 -g 5000 /var/mail/remote
postconf -e \
    "myhostname = mx.remote.test" \
    "mydestination =" \
    "inet_protocols = ipv4" \
    "mynetworks = 127.0.0.0/8" \
    "maillog_file = /dev/stdout" \
    "virtual_mailbox_domains = remote.test mismatch.test faraway.test sts.test plain.test" \
    "virtual_mailbox_base = /var/mail" \
    "virtual_mailbox_maps = static:remote/Maildir/" \
    "virtual_uid_maps = static:5000" \
    "virtual_gid_maps = static:5000" \
    "smtpd_tls_security_level = may" \
    "smtpd_tls_chain_files = /etc/postfix/key.pem, /etc/postfix/cert.pem" \
    "smtpd_tls_received_header = yes" \
    "smtpd_recipient_restrictions = check_recipient_access inline:{ {refuse@remote.test=550 5.1.1 No such user here}, {later@remote.test=450 4.2.0 Try again later} }, reject_unauth_destination"
echo "relay password" | saslpasswd2 -p -c -u remote.test relay
chown root:postfix /etc/sasldb2 && chmod 0640 /etc/sasldb2
printf '%s\n' 'pwcheck_method: auxprop' 'auxprop_plugin: sasldb' 'mech_list: PLAIN LOGIN' \
    > /etc/postfix/sasl/smtpd.conf
postconf -F smtp/inet/chroot=n
postconf -M submission/inet="submission inet n - n - - smtpd"
postconf -P "submission/inet/smtpd_sasl_auth_enable=yes" \
    "submission/inet/smtpd_tls_security_level=encrypt" \
    "submission/inet/smtpd_relay_restrictions=permit_sasl_authenticated,reject" \
    "submission/inet/smtpd_recipient_restrictions=" \
    "submission/inet/smtpd_sasl_local_domain=remote.test"
mkdir -p /srv/www/.well-known
printf 'version: STSv1\nmode: enforce\nmx: mx3.remote.test\nmax_age: 86400\n' >/srv/www/.well-known/mta-sts.txt
(cd /srv/www && exec openssl s_server -quiet -accept 443 -WWW \
    -cert /etc/testremote/mta-sts.sts.test.pem -key /etc/testremote/mta-sts.sts.test.key) &
exec postfix start-fg
