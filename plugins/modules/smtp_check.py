#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: smtp_check
short_description: Probe an SMTP relay the way Supabase Auth will use it
version_added: 0.1.0
description:
  - Connects to an SMTP relay on one or more candidate ports, all at the same time, and goes as far
    as Supabase Auth would - TCP connection, TLS, greeting and C(EHLO), C(AUTH), and optionally
    C(MAIL FROM), C(RCPT TO) and a real test message - then says which port works and, for each
    port that does not, why (a failure class) and what to do about it (a hint).
  - The TLS mode follows Supabase Auth's mailer (gomail over Go's C(net/smtp)), chosen by the port
    number only. On a port in O(implicit_tls_ports) (V(465) by default) TLS starts with the first
    byte. On any other port the probe speaks plain SMTP and upgrades with C(STARTTLS) when the
    server offers it.
  - Credentials are never sent over a connection without TLS. A port that offers no C(STARTTLS)
    is reported as V(starttls-unavailable), which is what Supabase Auth reports as
    C(unencrypted connection); such a port is never reported as working.
  - The C(AUTH) mechanism is chosen as Supabase Auth chooses it. C(CRAM-MD5) when offered, else
    C(LOGIN) when offered without C(PLAIN), else C(PLAIN).
  - It changes nothing, so it always reports C(changed=false). It reads no provider API and takes
    no provider credentials.
author:
  - karto maintainers (@karto)
attributes:
  check_mode:
    description:
      - Probes as in a normal run but never sends a message. With O(send=true) it stops after
        C(RCPT TO) and resets the transaction with C(RSET).
    support: full
  diff_mode:
    description: Nothing to show.
    support: none
options:
  host:
    description:
      - The SMTP host name Supabase Auth will use (C(smtp_host)), bare, for example
        V(smtp.relay.example), with no scheme, port or path.
      - It is also the name the relay's TLS certificate is checked against, also when
        O(connect_to) sends the connection elsewhere.
    type: str
    required: true
  ports:
    description:
      - Candidate ports, each probed at the same time as the others.
      - The recommended port is the first that works of V(465), then V(587), then the others in
        the order given.
    type: list
    elements: int
    default: [465, 587]
  username:
    description:
      - SMTP user name; some relays take a fixed one, such as V(apikey), with the API key as password.
      - Without O(username) and O(password) no C(AUTH) is tried, as Supabase Auth tries none; a relay
        that wants a login then refuses C(MAIL FROM) (V(auth-unavailable)).
      - Leading or trailing whitespace is reported as V(whitespace-in-credential) without any
        connection.
    type: str
  password:
    description:
      - SMTP password or API key. Never sent before TLS is up, never printed or returned.
      - Leading or trailing whitespace is reported as V(whitespace-in-credential) without any
        connection.
    type: str
  sender:
    description:
      - Envelope sender (C(MAIL FROM)), the address Supabase Auth sends from (C(smtp_admin_email)).
        A relay that checks senders refuses an unverified one here.
      - A plain ASCII address (an internationalised domain in its C(xn--) form), as Supabase Auth sends
        without C(SMTPUTF8); anything else is refused before any connection. The same holds for O(recipient).
      - Many servers judge the sender only at C(RCPT TO) (Postfix does by default). So after
        C(MAIL FROM) the probe always goes on to C(RCPT TO) - to O(recipient), or without one to the
        sender's own address - and then resets the transaction with C(RSET), so nothing is delivered.
        If the server refuses the sender's own address as a recipient, the sender is not judged and a
        warning says so.
      - What it cannot see - some relays check the From address only after the message, at the end of
        C(DATA); only O(send=true) sees that refusal. The provider roles therefore also ask the relay's
        API whether the sender is verified (C(mail_relay.sender_verified)). Nor can it see what a
        receiving server will do with the mail (DMARC, spam filters); see
        M(karto.supabase_mail.sender_domain_check).
      - Without it the probe stops after C(AUTH) (after C(EHLO) when no credentials are given).
    type: str
  recipient:
    description:
      - Recipient (C(RCPT TO)) to try. Needs O(sender).
      - Without O(send=true) the transaction is then reset with C(RSET) and nothing is sent.
      - Without it, C(RCPT TO) goes to O(sender) itself (see O(sender)).
    type: str
  send:
    description:
      - Send a short real test message from O(sender) to O(recipient) (needs both), one per port
        that gets that far. The subject names the host and port.
      - Never in check mode. There the probe stops after C(RCPT TO) and C(RSET).
    type: bool
    default: false
  timeout:
    description:
      - Seconds the whole probe may take, for all ports together (they run at the same time), from
        the first connection to the last answer. A port still not done by then is reported with the
        timeout class of the stage it was at - V(connect-timeout), V(tls-timeout), V(greeting-timeout),
        V(auth-timeout) or V(mail-timeout) - or V(dns) while its name was still resolving.
      - A silent (black-holed) port therefore costs at most this long.
    type: int
    default: 10
  validate_certs:
    description:
      - Check the relay's TLS certificate against trusted CAs and O(host), as Supabase Auth does.
        The trusted CAs are the system's (OpenSSL's default store, which E(SSL_CERT_FILE) and
        E(SSL_CERT_DIR) can point elsewhere) and those of O(ca_path).
      - Set to V(false) only to look past a certificate problem. Supabase Auth will not.
    type: bool
    default: true
  ca_path:
    description:
      - A file of PEM CA certificates (or a directory of hashed ones) to trust besides the system's,
        for example a test relay's own CA.
      - If not set, the environment variable E(SMTP_CHECK_CA_PATH) is used.
    type: path
  connect_to:
    description:
      - Where to really connect, per logical port, like C(curl --connect-to). Each key is a
        port of O(ports) (as a string), each value an C(address:port) (C([IPv6]:port) for an IPv6
        address). The TLS mode still follows the logical port, and the certificate is still checked
        against O(host).
      - For SSH tunnels, proxies and tests. Keys for ports not in O(ports) are ignored.
      - If not set, the environment variable E(SMTP_CHECK_CONNECT_TO) is used, a JSON object such as
        C({"465":"127.0.0.1:10465"}).
    type: dict
  implicit_tls_ports:
    description:
      - Ports on which TLS starts with the first byte (implicit TLS, also called SMTPS or "SSL").
      - Supabase Auth does that on V(465) only, and talks plain SMTP (with C(STARTTLS) when offered)
        on every other port. Any other port listed here gets a warning, because even when it works
        for this probe it will not work for Supabase. V(465) left out gets a warning too.
    type: list
    elements: int
    default: [465]
  fail_on_error:
    description:
      - Fail the task when no port works, with the class and hint of the port that got furthest.
      - With V(false) the task succeeds and RV(ok), RV(results) say what happened.
    type: bool
    default: true
notes:
  - The probe says C(EHLO localhost) (Supabase Auth says its own host name) and, like Go's TLS
    client, accepts TLS 1.2 or later.
  - The relay sees a real login (and, with O(send=true), a real message), so the relay's logs and
    rate limits count it.
  - Logins are tried one port at a time, and after the first refused login no other port tries it.
    Mail servers delay the answer to a failed login and slow down further logins from the same
    address, so the same wrong password on several ports at once would turn a quick refusal into
    timeouts. The other ports then report the same class, with a reply that says the login was not
    tried there.
seealso:
  - module: karto.supabase_mail.supabase_smtp
  - module: karto.supabase_mail.supabase_email_test
  - name: Supabase custom SMTP
    description: How Supabase Auth uses a custom SMTP server.
    link: https://supabase.com/docs/guides/auth/auth-smtp
"""

EXAMPLES = r"""
# mail_relay is the relay contract fact a provider role sets (see the relay_contract role).
- name: Check the relay takes these credentials on 465 or 587, as Supabase Auth will use them
  karto.supabase_mail.smtp_check:
    host: "{{ mail_relay.host }}"
    username: "{{ mail_relay.username }}"
    password: "{{ mail_relay.password }}"
    sender: "{{ mail_relay.sender_email }}"
  register: relay
  delegate_to: localhost

- name: Say which port to give Supabase
  ansible.builtin.debug:
    msg: "Use port {{ relay.recommended_port }}"

- name: Send one real test mail through port 587 (STARTTLS)
  karto.supabase_mail.smtp_check:
    host: "{{ mail_relay.host }}"
    ports: [587]
    username: "{{ mail_relay.username }}"
    password: "{{ mail_relay.password }}"
    sender: "{{ mail_relay.sender_email }}"
    recipient: karto.help@ro.ru
    send: true
  delegate_to: localhost

- name: Probe three ports within 5 seconds and report instead of failing
  karto.supabase_mail.smtp_check:
    host: "{{ mail_relay.host }}"
    ports: [465, 587, 2525]
    username: "{{ mail_relay.username }}"
    password: "{{ mail_relay.password }}"
    timeout: 5
    fail_on_error: false
  register: probe
  delegate_to: localhost

- name: Show each port's verdict
  ansible.builtin.debug:
    msg: "{{ item.port }}: {{ 'works' if item.ok else item.error_class ~ ' - ' ~ item.hint }}"
  loop: "{{ probe.results }}"
  loop_control:
    label: "{{ item.port }}"
"""

RETURN = r"""
ok:
  description: Whether at least one port worked all the way (as far as the options asked).
  returned: always
  type: bool
  sample: true
recommended_port:
  description:
    - The port to give Supabase - the first that works of 465, then 587, then the others in the order
      of O(ports). Null when none works.
  returned: always
  type: int
  sample: 465
elapsed:
  description: Seconds the probe took, all ports together (Ansible's own start-up not counted).
  returned: always
  type: float
  sample: 0.42
results:
  description: One entry per port of O(ports), in that order.
  returned: always
  type: list
  elements: dict
  contains:
    port:
      description: The logical port (the one Supabase would use).
      type: int
      sample: 465
    ok:
      description: Whether this port worked all the way.
      type: bool
      sample: true
    stage:
      description:
        - Where the probe stopped - the stage that failed, or the last one done when RV(results[].ok).
        - V(connect) (DNS and TCP), V(tls) (implicit TLS handshake, or C(STARTTLS) and its handshake),
          V(greeting) (the server's first line), V(ehlo), V(auth), V(mail), V(rcpt), V(data).
      type: str
      sample: auth
    tls:
      description: How TLS was started - V(implicit), V(starttls), or null when it was not.
      type: str
      sample: implicit
    auth_mechanism:
      description: The C(AUTH) mechanism used (chosen as Supabase Auth chooses it), or null.
      type: str
      sample: PLAIN
    sent:
      description: Whether a test message was sent (and accepted) through this port.
      type: bool
      sample: false
    connected_to:
      description: The C(address:port) really connected to (see O(connect_to)), or null.
      type: str
      sample: 203.0.113.25:465
    error_class:
      description:
        - Null when the port worked, else one of V(whitespace-in-credential), V(dns), V(connect-timeout),
          V(connection-refused), V(tls-timeout), V(tls-mismatch) (the port and the TLS mode disagree),
          V(tls-handshake) (the port speaks TLS but the server ended the handshake with an alert),
          V(tls-certificate), V(greeting-timeout), V(starttls-unavailable), V(auth-unavailable),
          V(auth-timeout) (no answer to the login in time; servers delay failed logins),
          V(auth-temporary) (C(454) temporary authentication failure), V(auth-rejected),
          V(login-required) (no credentials were given and the server wants a login),
          V(sender-rejected), V(recipient-rejected), V(mail-timeout), V(rate-limited), V(relay-refused),
          V(unknown).
      type: str
      sample: auth-rejected
    hint:
      description: What to do about the failure; null when the port worked.
      type: str
      sample: "The relay refused the SMTP user name or password: check the SMTP user exists and ..."
    reply:
      description:
        - The server's last reply (code and text), or what happened when there was none (for example
          a timeout or a TLS error). Credentials are never part of it.
      type: str
      sample: 535 Incorrect authentication data
    elapsed:
      description: Seconds this port's probe took.
      type: float
      sample: 0.21
    rcpt_to:
      description: The address given to C(RCPT TO) (O(recipient), or O(sender) itself), or null when the probe did not get there.
      type: str
      sample: karto.help@ro.ru
"""

import os

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.karto.supabase_mail.plugins.module_utils._smtp_probe import (
    SmtpRedactor,
    best_failure,
    probe_all,
    recommended_port,
    tls_warnings,
    whitespace_results,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_email,
    check_no_surrounding_whitespace,
    check_not_empty,
    check_range,
    check_smtp_host,
    first_problem,
)


# Input


def parse_address(text):
    """('host', port) from 'host:port' or '[v6]:port'; None when it is not that."""
    text = (text or "").strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            return None
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return host, int(port)


def check_connect_to(value):
    """(problem or None, {port: (host, port)})."""
    routes = {}
    for key, target in (value or {}).items():
        key_text = str(key).strip()
        if not key_text.isdigit() or not 1 <= int(key_text) <= 65535:
            return ("connect_to keys must be port numbers between 1 and 65535; got %r." % (key,)), {}
        address = parse_address(target if isinstance(target, str) else None)
        if address is None:
            return ("connect_to[%s] must be an address:port such as 127.0.0.1:2525 or [::1]:2525; got %r."
                    % (key_text, target)), {}
        routes[int(key_text)] = address
    return None, routes


def validate(params):
    """The first problem in the input (a sentence naming the parameter), or None."""
    ports = params["ports"] or []
    duplicates = sorted(port for port in set(ports) if ports.count(port) > 1)
    problem = first_problem(
        check_smtp_host("host", params["host"]),
        "ports must list at least one port." if not ports else None,
        "ports lists %s more than once." % ", ".join(str(port) for port in duplicates) if duplicates else None,
        *[check_range("ports", port, 1, 65535) for port in ports],
        *[check_range("implicit_tls_ports", port, 1, 65535) for port in params["implicit_tls_ports"] or []],
        check_not_empty("username", params["username"]),
        check_not_empty("password", params["password"]),
        check_email("sender", params["sender"]),
        check_email("recipient", params["recipient"]),
        check_range("timeout", params["timeout"], 1, 3600),
    )
    if problem:
        return problem
    if params["ca_path"] and not os.path.exists(params["ca_path"]):
        return "ca_path %s does not exist." % params["ca_path"]
    return check_connect_to(params["connect_to"])[0]


def credential_problem(params):
    """Whitespace around a credential: found before any connection; never quotes the password."""
    return first_problem(
        check_no_surrounding_whitespace("username", params["username"]),
        check_no_surrounding_whitespace("password", params["password"], secret=True),
    )


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            ports=dict(type="list", elements="int", default=[465, 587]),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            sender=dict(type="str"),
            recipient=dict(type="str"),
            send=dict(type="bool", default=False),
            timeout=dict(type="int", default=10),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path", fallback=(env_fallback, ["SMTP_CHECK_CA_PATH"])),
            connect_to=dict(type="dict", fallback=(env_fallback, ["SMTP_CHECK_CONNECT_TO"])),
            implicit_tls_ports=dict(type="list", elements="int", default=[465]),
            fail_on_error=dict(type="bool", default=True),
        ),
        required_together=[("username", "password")],
        required_by={"recipient": "sender"},
        required_if=[("send", True, ("sender", "recipient"))],
        supports_check_mode=True,
    )
    params = module.params
    problem = validate(params)
    if problem:
        module.fail_json(msg=problem)

    ports = list(params["ports"])
    for warning in tls_warnings(ports, params["implicit_tls_ports"]):
        module.warn(warning)

    spec = dict(
        host=params["host"],
        ports=ports,
        username=params["username"],
        password=params["password"],
        sender=params["sender"],
        recipient=params["recipient"],
        send=params["send"],
        check_mode=module.check_mode,
        timeout=params["timeout"],
        validate_certs=params["validate_certs"],
        ca_path=params["ca_path"],
        connect_to=check_connect_to(params["connect_to"])[1],
        implicit_tls_ports=set(params["implicit_tls_ports"]),
        redact=SmtpRedactor(params["username"], params["password"]),
        warnings=[],  # the probe's own findings, said once the ports are done
    )

    whitespace = credential_problem(params)
    if whitespace:
        results, elapsed = whitespace_results(ports, whitespace), 0.0
    else:
        results, elapsed = probe_all(spec)
    for warning in spec["warnings"]:
        module.warn(warning)

    recommended = recommended_port(results)
    outcome = dict(changed=False, ok=recommended is not None, recommended_port=recommended, results=results,
                   elapsed=elapsed)
    if recommended is None and params["fail_on_error"]:
        if whitespace:
            message = "whitespace-in-credential: %s Nothing was sent to %s." % (whitespace, params["host"])
        else:
            best = best_failure(results)
            detail = " (%s)" % best["reply"] if best["reply"] else ""
            message = ("No port of %s works the way Supabase Auth would use it. Port %d got furthest and stopped at %s "
                       "with %s%s. %s" % (params["host"], best["port"], best["stage"], best["error_class"], detail,
                                          best["hint"]))
        module.fail_json(msg=message, **outcome)
    module.exit_json(**outcome)


def main():
    run_module()


if __name__ == "__main__":
    main()
