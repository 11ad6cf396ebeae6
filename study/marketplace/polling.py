"""waitress's event loop, made to cost what happens rather than what is open (Linux, epoll).

waitress asks every open connection whether it wants to read or write on every turn of its loop
(select.poll built afresh each time), and its loop turns a few times per request. With hundreds
of keep-alive connections that asking became most of the server's time. This loop keeps the
connections registered with epoll between turns and asks again only those that can have
changed: the ones an event came for, new ones, ones with output waiting, ones a worker thread
woke the loop for, and the listening socket and the wake-up pipe (which also run waitress's
timeouts). An idle keep-alive connection wants to read and nothing else until its socket says
otherwise; one whose request waits for or is in a worker thread wants nothing until that thread
wakes the loop for it. Every connection is asked again once a second, and after each of
waitress's idle-connection sweeps, so a change that reached one some other way waits a second
at most.

What each connection is asked (readable(), writable()), what is done with an event
(wasyncore.readwrite) and which flags mean what are waitress's own; only when to ask changes.
"""

from __future__ import annotations

import select
import time

from waitress import wasyncore
from waitress.channel import HTTPChannel

READ = select.POLLIN | select.POLLPRI
WRITE = select.POLLOUT
FULL_CHECK_S = 1.0


class _Turns:
    """The registrations of one server's connections, and one turn of its loop."""

    def __init__(self):
        self.epoll = select.epoll()
        self.objs: dict[int, object] = {}   # fd -> the dispatcher it was registered for
        self.flags: dict[int, int] = {}     # fd -> flags registered (0: not registered)
        self.watch: set[int] = set()        # fds asked on every turn
        self.others: set[int] = set()       # the listening socket(s) and the wake-up pipe
        self.woken: list[int] = []          # fds a worker thread pulled the trigger for
        self.events: list[tuple[int, int]] = []
        self.full_at = 0.0

    def _forget(self, fd: int) -> None:
        self.objs.pop(fd, None)
        if self.flags.pop(fd, 0):
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass  # closed already: epoll dropped it itself
        self.watch.discard(fd)
        self.others.discard(fd)

    def _ask(self, fd: int, obj) -> None:
        flags = 0
        if obj.readable():
            flags |= READ
        if obj.writable() and not obj.accepting:
            flags |= WRITE
        if self.objs.get(fd) is not obj:  # a new connection, or a new one on a reused number
            self._forget(fd)
            self.objs[fd] = obj
        old = self.flags.get(fd, 0)
        if flags != old:
            try:
                if not old:
                    self.epoll.register(fd, flags)
                elif not flags:
                    self.epoll.unregister(fd)
                else:
                    self.epoll.modify(fd, flags)
            except FileExistsError:
                self.epoll.modify(fd, flags)
            except FileNotFoundError:
                if flags:
                    self.epoll.register(fd, flags)
            except OSError:
                if flags:
                    raise
            self.flags[fd] = flags
        if not isinstance(obj, HTTPChannel):
            self.others.add(fd)
        elif flags & WRITE:
            self.watch.add(fd)
        else:
            self.watch.discard(fd)

    def turn(self, timeout: float, map: dict) -> None:
        for fd in self.objs.keys() - map.keys():
            self._forget(fd)
        now = time.monotonic()
        full = now - self.full_at >= FULL_CHECK_S
        if not full:
            # The listening socket's readable() runs waitress's idle-connection sweep, which
            # can mark any connection for closing: after one, every connection is asked.
            for fd in list(self.others):
                obj = map.get(fd)
                if obj is not None:
                    sweep = getattr(obj, "next_channel_cleanup", None)
                    self._ask(fd, obj)
                    full = full or getattr(obj, "next_channel_cleanup", None) != sweep
        woken = set()
        while self.woken:  # taken before anything is asked: what comes later waits a turn
            woken.add(self.woken.pop())
        if full:
            self.full_at = now
            ask = map.keys()
        else:
            ask = woken | self.watch
            ask.update(fd for fd, _ in self.events)
            ask.update(map.keys() - self.objs.keys())
        for fd in list(ask):
            obj = map.get(fd)
            if obj is not None:
                self._ask(fd, obj)
        self.events = self.epoll.poll(timeout)
        for fd, flags in self.events:
            obj = map.get(fd)
            if obj is not None:
                wasyncore.readwrite(obj, flags)


class EpollLoop:
    """Stands in for the wasyncore module a waitress server runs its loop with."""

    dispatcher = wasyncore.dispatcher

    def __init__(self):
        self.turns = _Turns()

    def loop(self, timeout=30.0, use_poll=False, map=None, count=None):
        while map and (count is None or count > 0):
            self.turns.turn(timeout, map)
            if count is not None:
                count -= 1


class _Waker:
    """The server as one connection sees it: when a worker thread wakes the loop for the
    connection (waitress does so after every change it makes to one: a request served, output
    waiting), the loop also learns which one to ask. Everything else is the server's."""

    __slots__ = ("_server", "_channel", "_woken")

    def __init__(self, server, channel, woken: list[int]):
        self._server, self._channel, self._woken = server, channel, woken

    def pull_trigger(self, *args) -> None:
        fd = self._channel._fileno
        if fd is not None:
            self._woken.append(fd)  # before the wake-up, so the turn it starts sees it
        self._server.pull_trigger(*args)

    def __getattr__(self, name: str):
        return getattr(self._server, name)


def install(server) -> None:
    """Run the waitress server (as made by waitress.create_server) with the epoll loop, where
    the system has epoll; elsewhere it keeps waitress's own."""
    if not hasattr(select, "epoll"):
        return
    loop = EpollLoop()
    woken = loop.turns.woken

    class Channel(HTTPChannel):
        def __init__(self, server, sock, addr, adj, map=None):
            super().__init__(_Waker(server, self, woken), sock, addr, adj, map)
            woken.append(self._fileno)  # new, perhaps on the number of one just closed

    listeners = [server] if hasattr(server, "channel_class") else \
        [o for o in server.map.values() if hasattr(o, "channel_class")]
    for listener in listeners:
        listener.channel_class = Channel
    server.asyncore = loop
