#!/bin/sh
# A receiving MTA for remote.test (and mismatch.test, whose TLSA record the tests get
# wrong) with its own self-signed certificate, which DANE's TLSA records name and
# opportunistic TLS does not check; mail is stored under /var/mail/remote/Maildir.
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
    "virtual_mailbox_domains = remote.test mismatch.test" \
    "virtual_mailbox_base = /var/mail" \
    "virtual_mailbox_maps = static:remote/Maildir/" \
    "virtual_uid_maps = static:5000" \
    "virtual_gid_maps = static:5000" \
    "smtpd_tls_security_level = may" \
    "smtpd_tls_chain_files = /etc/postfix/key.pem, /etc/postfix/cert.pem" \
    "smtpd_tls_received_header = yes" \
    "smtpd_recipient_restrictions = check_recipient_access inline:{ {refuse@remote.test=550 5.1.1 No such user here}, {later@remote.test=450 4.2.0 Try again later} }, reject_unauth_destination"
exec postfix start-fg
