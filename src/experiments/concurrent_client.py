"""One thread, K slow servers: fetch from one at a time, or from all at once with select.

Every server answers D ms after the request arrives (slow_servers.py).

serial: one server after the other, with blocking calls. connect() blocks for the handshake,
    recv() blocks through the server's delay (phase 1 of the read) and the copy (phase 2). While
    it waits for one server it cannot even ask the next: the waits add up, K x D.
select: every socket non-blocking. connect() returns at once with EINPROGRESS (Python:
    connect_ex gives errno.EINPROGRESS): the handshake goes on in the kernel. select() then tells
    which sockets are writable (the handshake is over: SO_ERROR says whether it worked), where
    the request goes out, and later which are readable (a reply came), where recv() copies it
    without waiting. All K requests wait at the same time: the thread pays about the longest
    wait, D, not the sum.

strace -c, serial: connect, sendto, recvfrom (each blocking), K of each.
strace -c, select: connect (EINPROGRESS), select or pselect6, getsockopt (SO_ERROR), sendto,
    recvfrom (never blocking: select said it was ready).
Prints one JSON line: the section's wall time and each fetch's time (from its connect to the end
of its reply, and from the section's start to the end of its reply).
"""
import argparse
import errno
import select
import socket

from experiment import REQUEST, RECV_SIZE, Section, fetch, parse_address, report


def fetch_one_by_one(addresses, section):
    """serial: each fetch blocks until its reply is complete; then the next one starts."""
    fetches = []
    for address in addresses:
        began = section.elapsed()
        fetch(address)  # blocks for the handshake, then for the whole delay
        ended = section.elapsed()
        fetches.append({"seconds": ended - began, "endSeconds": ended})
    return fetches, {"einprogress": 0, "connectedAtOnce": len(addresses), "selectCalls": 0}


def fetch_all_at_once(addresses, section):
    """select: start every connect, then let select() say which socket can go on."""
    connecting, reading = {}, {}  # socket -> index of its server
    replies, began, ended = {}, {}, {}
    counts = {"einprogress": 0, "connectedAtOnce": 0, "selectCalls": 0}
    for index, address in enumerate(addresses):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        began[index] = section.elapsed()
        code = sock.connect_ex(address)  # never waits for the handshake
        if code == errno.EINPROGRESS:
            counts["einprogress"] += 1   # the handshake goes on in the kernel
        elif code == 0:
            counts["connectedAtOnce"] += 1
        else:
            raise OSError(code, f"connect to {address[0]}:{address[1]}")
        connecting[sock] = index
        replies[index] = bytearray()
    while connecting or reading:
        counts["selectCalls"] += 1
        readable, writable, _ = select.select(list(reading), list(connecting), [])  # sleeps until one is ready
        for sock in writable:  # the handshake is over, one way or the other
            index = connecting.pop(sock)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code != 0:
                raise OSError(code, f"connect to {addresses[index][0]}:{addresses[index][1]}")
            sock.send(REQUEST)  # a few bytes: the empty send buffer takes them whole
            reading[sock] = index
        for sock in readable:  # a reply (or its end) is there: recv does not wait
            index = reading[sock]
            data = sock.recv(RECV_SIZE)
            if data:
                replies[index] += data
                continue
            del reading[sock]  # b"": the server closed: this reply is complete
            sock.close()
            ended[index] = section.elapsed()
            if not replies[index].startswith(b"HTTP/1.0 200"):
                raise RuntimeError(f"server {index} answered {bytes(replies[index][:40])!r}")
    fetches = [{"seconds": ended[i] - began[i], "endSeconds": ended[i]} for i in range(len(addresses))]
    return fetches, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["serial", "select"], required=True)
    parser.add_argument("--servers", required=True, help="HOST:PORT,HOST:PORT,... of the slow servers")
    args = parser.parse_args()
    addresses = [parse_address(text) for text in args.servers.split(",")]

    how = fetch_one_by_one if args.mode == "serial" else fetch_all_at_once
    with Section() as section:
        fetches, counts = how(addresses, section)
    report(section, experiment="concurrent-client", arm=args.mode, part="fetch", fetches=fetches, **counts)


if __name__ == "__main__":
    main()
