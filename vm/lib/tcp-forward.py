#!/usr/bin/env python3
"""Relay one guest connection to HOST:PORT on the host.

qemu's user network runs this for every connection the guest opens to the
guestfwd address (-netdev user,...,guestfwd=tcp:IP:PORT-cmd:...). The plain
chardev form (guestfwd=...-tcp:HOST:PORT) opens ONE host connection at qemu
start and shares it: a second concurrent guest connection, or the server closing
an idle keep-alive, leaves the guest hanging. Here stdin/stdout is the guest
side (qemu passes a socket on fds 0-2, so nothing may be written to stderr);
errors go to LOGFILE.

usage: tcp-forward.py HOST PORT LOGFILE
"""
import os
import selectors
import socket
import sys
import time


def log(path, msg):
    try:
        with open(path, "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} tcp-forward[{os.getpid()}]: {msg}\n")
    except OSError:
        pass


def main():
    host, port, logfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    try:
        server = socket.create_connection((host, port), timeout=10)
    except OSError as e:
        log(logfile, f"cannot connect to {host}:{port}: {e}")
        return 1
    server.settimeout(None)
    guest_in, guest_out = 0, 1
    sel = selectors.DefaultSelector()
    sel.register(guest_in, selectors.EVENT_READ, "guest")
    sel.register(server, selectors.EVENT_READ, "server")
    while True:
        for key, _ in sel.select():
            if key.data == "guest":
                data = os.read(guest_in, 65536)
                if not data:  # guest finished sending: pass the half-close on
                    sel.unregister(guest_in)
                    server.shutdown(socket.SHUT_WR)
                    continue
                server.sendall(data)
            else:
                data = server.recv(65536)
                if not data:  # server done: exiting closes the guest side
                    return 0
                view = memoryview(data)
                while view:
                    view = view[os.write(guest_out, view):]


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BrokenPipeError, ConnectionResetError) as e:
        log(sys.argv[3], f"connection ended: {e}")
        sys.exit(0)
