"""A real SMTP server for the end-to-end tests (aiosmtpd).

Binds 127.0.0.1 on a free port (or --port), prints `PORT <n>` once it
listens, and writes every message it receives to <dir>/<sequence>.eml with
the envelope recipients in an X-Envelope-To header; numbering goes on from
the files already there, so a restarted server adds to them. Recipients
containing a --refuse text are refused for good (550), as a mail server
refuses an unknown mailbox. Stops when its standard input closes.
"""

import argparse
import os
import socket
import sys
import threading

from aiosmtpd.controller import Controller


class SaveToFolder:
    def __init__(self, folder, refuse):
        self.folder = folder
        self.refuse = refuse
        self.count = len([n for n in os.listdir(folder) if n.endswith(".eml")])
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse and self.refuse in address:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            name = os.path.join(self.folder, f"{self.count:06d}.eml")
        header = "X-Envelope-To: " + ", ".join(envelope.rcpt_tos) + "\r\n"
        temporary = name + ".part"
        with open(temporary, "wb") as handle:
            handle.write(header.encode())
            handle.write(envelope.original_content or envelope.content)
        os.rename(temporary, name)
        return "250 OK"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--refuse", default="")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    port = args.port or free_port()
    controller = Controller(SaveToFolder(args.dir, args.refuse), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"PORT {port}", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
