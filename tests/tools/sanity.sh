#!/usr/bin/env bash
# Run `ansible-test sanity` offline (no Ansible CI file host, no containers).
#
# Usage: tests/tools/sanity.sh [extra ansible-test sanity args, e.g. --test pylint]
#
# Environment (all optional):
#   VENV_BIN           bin/ of the virtualenv holding ansible-core (default: .venv/bin)
#   ANSIBLE_TEST_HOME  HOME given to ansible-test: holds its per-test venvs, the pip
#                      bootstrap cache and the staged copy of the collection (default:
#                      /tmp/karto-supabase-mail-ansible-test-$UID; short on purpose:
#                      ansible-test venv paths end up in shebangs)
#   SANITY_STAGE       where the collection is copied (default: $ANSIBLE_TEST_HOME/stage-<hash
#                      of the checkout path>); must be OUTSIDE any git work tree, otherwise
#                      ansible-test lists files with that repo's `git ls-files` and, the
#                      copy being git-ignored there, finds no targets ("All targets skipped")
#   SANITY_SKIP        space-separated sanity tests to skip (default: none)
#   SANITY_EXCLUDE     space-separated paths (relative to the checkout) not copied, so not
#                      checked (default: tests/sandbox, the provider emulators: test
#                      infrastructure, not collection content, and not in the built artifact)
#
# What it does and why:
# 1. ansible-test only runs from a directory named ansible_collections/<ns>/<name> and
#    resolves symlinks, so the collection is copied there (tests/tools/stage_collection.py:
#    git-tracked + untracked-not-ignored files, minus tests/sandbox), outside the checkout.
# 2. Every sanity test gets its own venv, whose pip is bootstrapped with a get-pip script
#    downloaded from the Ansible CI file host. ansible-test first looks for that script in
#    ~/.ansible/test/cache/get_pip_<ver>.py: we put tests/tools/get_pip_offline.py there
#    (ensurepip + `pip install pip==<ver>` from the package index).
# 3. ansible-test passes only PATH, HOME, LC_ALL and a few others to pip, so the index is
#    configured through pip's config files: /etc/pip.conf and /etc/xdg/pip/pip.conf are read
#    as they are, and the user's ~/.config/pip/pip.conf and ~/.pip/pip.conf are copied into
#    the private HOME.
# 4. Any test that ansible-test reports as skipped (e.g. a missing tool) fails the run,
#    unless it is listed in SANITY_SKIP.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv_bin=${VENV_BIN:-$repo/.venv/bin}
at_home=${ANSIBLE_TEST_HOME:-/tmp/karto-supabase-mail-ansible-test-$(id -u)}
stage_root=${SANITY_STAGE:-$at_home/stage-$(printf '%s' "$repo" | cksum | cut -d' ' -f1)}
skip=${SANITY_SKIP:-}
exclude=${SANITY_EXCLUDE-tests/sandbox}

if [[ ! -x $venv_bin/ansible-test ]]; then
    echo "sanity.sh: $venv_bin/ansible-test not found; run 'make venv' first" >&2
    exit 2
fi

python_version=$("$venv_bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# pip version ansible-test bootstraps in its venvs (get_venv_packages() in ansible-test).
pip_version=$("$venv_bin/python" - <<'EOF'
import pathlib, re, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / '_internal' / 'python_requirements.py'
m = re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", src.read_text())
print(m.group(1) if m else '')
EOF
)
if [[ -z $pip_version ]]; then
    echo "sanity.sh: cannot find the pip version ansible-test bootstraps; has ansible-test changed?" >&2
    exit 2
fi

# Private HOME for ansible-test: the pip bootstrap stand-in and pip's user config.
mkdir -p "$at_home/.ansible/test/cache"
chmod 700 "$at_home"
install -m 0644 "$repo/tests/tools/get_pip_offline.py" "$at_home/.ansible/test/cache/get_pip_${pip_version//./_}.py"
for conf in .config/pip/pip.conf .pip/pip.conf; do
    if [[ -f $HOME/$conf ]]; then
        mkdir -p "$(dirname "$at_home/$conf")"
        install -m 0644 "$HOME/$conf" "$at_home/$conf"
    else
        rm -f "$at_home/$conf"
    fi
done

exclude_args=()
for p in $exclude; do
    exclude_args+=(--exclude "$p")
done
collection=$("$venv_bin/python" "$repo/tests/tools/stage_collection.py" "$repo" "$stage_root" "${exclude_args[@]}")

skip_args=()
for t in $skip; do
    skip_args+=(--skip-test "$t")
done

log=$stage_root/sanity.log
cd "$collection"
status=0
# ansible-test finds shellcheck and other tools through PATH: put the venv first.
# The sed drops pip's noise about missing directories of local extra indexes (pip.conf);
# the full output stays in $log.
env HOME="$at_home" PATH="$venv_bin:$PATH" \
    "$venv_bin/ansible-test" sanity --local --python "$python_version" "${skip_args[@]}" "$@" 2>&1 \
    | tee "$log" | sed '/is ignored: it is neither a file nor a directory/d' || status=$?

# ansible-test exits 0 when a test is skipped (required program missing, no targets, ...):
# treat that as a failure, so that a check silently not running cannot pass for clean.
skipped_re='^WARNING: (Skipping|Required program|All targets skipped|.*due to missing)'
if grep -E "$skipped_re" "$log" >/dev/null; then
    echo "sanity.sh: FAILED: some sanity tests did not run:" >&2
    grep -E "$skipped_re" "$log" >&2
    [[ $status -ne 0 ]] || status=3
fi
if [[ $status -eq 0 ]]; then
    echo "sanity.sh: ansible-test sanity passed (log: $log)"
else
    echo "sanity.sh: ansible-test sanity failed with status $status (log: $log)" >&2
fi
exit "$status"
