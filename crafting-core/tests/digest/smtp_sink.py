#!/usr/bin/env python3
"""A real SMTP server on loopback for the digest tests.

Usage: smtp_sink.py PORT OUT_DIR [REFUSE_FIRST_N]

Listens on 127.0.0.1:PORT (PORT 0 picks a free port), answers the first
REFUSE_FIRST_N DATA commands with 451 and accepts the rest. Every accepted
message is saved as OUT_DIR/NNNN.json (envelope sender and recipients) and
OUT_DIR/NNNN.eml (the message bytes as received, dot-unstuffed), the .eml
written last under its final name so a reader never sees half a message.
Prints "READY <port>" once listening and stops when its stdin closes.
"""

import json
import os
import socket
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out_dir, refuse_first):
        self.out_dir = out_dir
        self.refuse_left = refuse_first
        self.saved = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.refuse_left > 0:
                self.refuse_left -= 1
                return "451 4.3.0 Sink refuses this attempt, try again later"
            self.saved += 1
            n = self.saved
        base = os.path.join(self.out_dir, "%04d" % n)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content
        with open(base + ".tmp", "wb") as f:
            f.write(raw)
        os.rename(base + ".tmp", base + ".eml")
        return "250 2.0.0 Saved"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if len(sys.argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 2
    port = int(sys.argv[1]) or free_port()
    out_dir = sys.argv[2]
    refuse_first = int(sys.argv[3]) if len(sys.argv) == 4 else 0
    os.makedirs(out_dir, exist_ok=True)
    controller = Controller(Sink(out_dir, refuse_first), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        print("READY %d" % port, flush=True)
        # Runs until the test closes our stdin (or exits).
        sys.stdin.read()
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
