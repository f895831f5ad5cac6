"""A real SMTP server for the end-to-end tests (aiosmtpd).

Binds 127.0.0.1 on a free port, prints `PORT <n>` once it listens, and writes
every message it receives to <dir>/<sequence>.eml with the envelope recipients
in an X-Envelope-To header. Stops when its standard input closes.
"""

import argparse
import os
import socket
import sys
import threading

from aiosmtpd.controller import Controller


class SaveToFolder:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0
        self.lock = threading.Lock()

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
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    port = free_port()
    controller = Controller(SaveToFolder(args.dir), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"PORT {port}", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
