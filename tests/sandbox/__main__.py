"""Run the sandbox: `python -m tests.sandbox --endpoints-file FILE [--seed default|none] [--state-dir DIR]`."""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .core import run_services
from .dns_server import DnsServer
from .mailbox_server import MailboxServer
from .mailgun_api import MailgunApi
from .resend_api import ResendApi
from .sendgrid_api import SendgridApi
from .smtp2go_api import Smtp2goApi
from .smtp_relay import SmtpRelay
from .supabase_api import SupabaseManagementApi
from .supabase_auth import SupabaseAuth

# Every emulator the sandbox runs, the one list of them: a new emulator is one module plus one
# entry here (a provider's relay backend registers itself in its emulator's __init__).
SERVICES = (
    DnsServer,
    SupabaseManagementApi,
    Smtp2goApi,
    SendgridApi,
    MailgunApi,
    ResendApi,
    SmtpRelay,
    MailboxServer,  # after SmtpRelay: it delivers into the relay's inbox
    SupabaseAuth,
)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox", description=__doc__)
    parser.add_argument("--endpoints-file", required=True, type=Path,
                        help="where to write the JSON endpoints file once every service listens")
    parser.add_argument("--seed", choices=("default", "none"), default="default",
                        help="'default' creates the demo data of tests/sandbox/seed.py")
    parser.add_argument("--state-dir", type=Path,
                        help="folder for certificates and other files (default: a new temporary folder)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="also stop when stdin closes (the test fixture uses this, so a sandbox "
                             "never outlives a killed pytest)")
    return parser.parse_args(argv)


def write_atomically(path, data):
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def main(argv=None):
    args = parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    own_state_dir = args.state_dir is None
    state_dir = Path(tempfile.mkdtemp(prefix="sandbox-")) if own_state_dir else args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        with run_services(state_dir, SERVICES, seed=args.seed == "default") as (_context, endpoints):
            write_atomically(args.endpoints_file, {"pid": os.getpid(), **endpoints})
            print(f"sandbox: ready, endpoints in {args.endpoints_file}", file=sys.stderr, flush=True)
            if args.exit_on_stdin_eof:
                threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
            stop.wait()
    finally:
        args.endpoints_file.unlink(missing_ok=True)  # a stale file would point at dead ports
        if own_state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
