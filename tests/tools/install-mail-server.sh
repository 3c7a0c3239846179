#!/usr/bin/env bash
# Install Debian's Postfix and Dovecot (auth only) for the sandbox's mailbox server
# (tests/sandbox/mailbox_server.py) when their binaries are missing. Idempotent: with both
# present it only says so. Called by `make mail-server` (integration and demo depend on it).
#
# The packages are installed unconfigured and no system service is started: the sandbox runs
# private instances with their own configuration in its state directory.
set -euo pipefail

POSTFIX=/usr/sbin/postfix
DOVECOT=/usr/sbin/dovecot
PACKAGES=(postfix dovecot-core)
POLICY_RC_D=/usr/sbin/policy-rc.d

say() { echo "mail-server: $*"; }
die() { echo "mail-server: ERROR: $*" >&2; exit 1; }

if [[ -x $POSTFIX && -x $DOVECOT ]]; then
    say "$POSTFIX and $DOVECOT are installed, nothing to do"
    exit 0
fi

command -v apt-get >/dev/null || die "postfix/dovecot are missing and apt-get is not available: install ${PACKAGES[*]} by hand"

# Root runs apt-get itself (CI runs as root); anyone else goes through sudo (which may ask for
# a password on a terminal).
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "postfix/dovecot are missing; installing ${PACKAGES[*]} needs root or sudo"
    SUDO=(sudo)
fi
as_root() { "${SUDO[@]}" "$@"; }
apt() { as_root env DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Use-Pty=0 "$@"; }

start=$(date +%s)
say "installing ${PACKAGES[*]} (missing: $([[ -x $POSTFIX ]] || echo -n "$POSTFIX ")$([[ -x $DOVECOT ]] || echo -n "$DOVECOT"))"

# Postfix's debconf question: no system configuration (no /etc/postfix/main.cf, nothing listens).
say "debconf: postfix/main_mailer_type = No configuration"
echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections

# No service may start during the install (invoke-rc.d asks policy-rc.d; 101 = "not allowed").
# An existing policy-rc.d (e.g. Docker's) is left as it is; ours is removed afterwards.
created_policy=false
if [[ ! -e $POLICY_RC_D ]]; then
    say "writing $POLICY_RC_D (exit 101) so that no service starts; removed afterwards"
    printf '#!/bin/sh\n# karto install-mail-server.sh: no service starts during the install\nexit 101\n' \
        | as_root tee "$POLICY_RC_D" >/dev/null
    as_root chmod 755 "$POLICY_RC_D"
    created_policy=true
fi
cleanup() {
    if [[ $created_policy == true ]]; then
        say "removing $POLICY_RC_D"
        as_root rm -f "$POLICY_RC_D"
    fi
}
trap cleanup EXIT

install_packages() {
    apt install -y --no-install-recommends "${PACKAGES[@]}"
}

# apt-get update only when needed: no package list yet knows the packages, or the install
# fails (e.g. a stale list naming versions the mirror no longer has).
if ! apt-cache show "${PACKAGES[@]}" >/dev/null 2>&1; then
    say "apt-get update (the package lists do not know ${PACKAGES[*]})"
    apt update
    install_packages || die "apt-get install ${PACKAGES[*]} failed"
elif ! install_packages; then
    say "install failed with the current package lists; apt-get update and one retry"
    apt update
    install_packages || die "apt-get install ${PACKAGES[*]} failed"
fi

[[ -x $POSTFIX && -x $DOVECOT ]] || die "installed ${PACKAGES[*]} but $POSTFIX or $DOVECOT is still missing"

say "done in $(( $(date +%s) - start ))s: $(dpkg-query -W -f='postfix ${Version}, ' postfix)$(dpkg-query -W -f='dovecot-core ${Version}' dovecot-core)"
