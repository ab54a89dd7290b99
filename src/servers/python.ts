// The course's own servers, written in Python in the course's style (src/servers/python/), as
// models of the registry: what each declares of itself, and the program that runs it. Each one
// does what its TypeScript twin does with the same mechanism, through Python's socket, select,
// selectors, threading, os.fork, gevent and asyncio.
//
// The fingerprints are what strace shows of CPython 3.11 on glibc 2.36 (Debian bookworm), steady
// state, under `iolab client --mode echo`: socket.recv is recvfrom and send/sendall sendto;
// accept is accept4; select.select is pselect6 (glibc makes select(2) so on x86_64);
// select.poll is poll; select.epoll, selectors and asyncio wait in epoll_wait, and so does
// gevent's libev; a thread is clone3 (clone where clone3 is refused: glibc falls back), a fork
// clone. Only python-threading and python-fork clone while serving; the others forbid clone and
// clone3, and each forbids the readiness calls of its siblings. CPython's own extras, true but no
// part of a fingerprint: a getsockname per accepted connection; asyncio's mmap/mremap/munmap per
// read (each recv allocates its 256 KiB max_size, above malloc's mmap threshold, then shrinks
// it); gevent's getsockopt(SO_SNDBUF) per sendall and libev's getpid per loop turn (its fork
// check).
import type { Fingerprint, ProgramModel } from './model.js';

const program = (file: string): ProgramModel['program'] => ({ language: 'python', file: `src/servers/python/${file}` });

const NO_CLONE = ['clone', 'clone3'];
const NO_SCAN = ['select', 'pselect6', 'poll', 'ppoll'];
const NO_EPOLL = ['epoll_wait', 'epoll_pwait', 'epoll_ctl'];
/** What epoll_wait and its interest list look like, for every model that waits in them. */
const EPOLL_LOOP: Fingerprint = {
  waitsIn: ['epoll_wait', 'epoll_pwait'],
  required: [['epoll_wait', 'epoll_pwait'], ['epoll_ctl'], ['recvfrom'], ['sendto']],
  forbidden: [...NO_SCAN, ...NO_CLONE],
};

export const pythonModels: readonly ProgramModel[] = [
  {
    name: 'python-blocking',
    summary: 'the course\'s blocking server: one thread; accept, then recv/sendall for that client until it leaves, then the next',
    program: program('blocking_server.py'),
    twin: 'blocking',
    traits: { waits: 'blocking-call', perConnection: 'none', concurrency: 'one', fdCeiling: 'RLIMIT_NOFILE', triggering: null, coroutines: false },
    fingerprint: {
      waitsIn: ['accept4', 'recvfrom'],
      required: [['accept4'], ['recvfrom'], ['sendto']],
      forbidden: [...NO_SCAN, ...NO_EPOLL, ...NO_CLONE],
    },
  },
  {
    name: 'python-threading',
    summary: 'a threading.Thread per connection (an OS thread; the GIL is let go in every blocking call), blocking recv/sendall in each',
    program: program('threading_server.py'),
    twin: 'threaded',
    traits: { waits: 'blocking-call', perConnection: 'thread', concurrency: 'all', fdCeiling: 'RLIMIT_NOFILE', triggering: null, coroutines: false },
    fingerprint: {
      waitsIn: ['accept4', 'recvfrom'],
      required: [['accept4'], ['recvfrom'], ['sendto'], ['clone', 'clone3'], ['futex']],
      forbidden: [...NO_SCAN, ...NO_EPOLL],
    },
  },
  {
    name: 'python-fork',
    summary: 'os.fork() per connection: a child process serves each client with blocking recv/sendall; the parent reaps on SIGCHLD',
    program: program('fork_server.py'),
    twin: null,
    traits: { waits: 'blocking-call', perConnection: 'process', concurrency: 'all', fdCeiling: 'RLIMIT_NOFILE', triggering: null, coroutines: false },
    fingerprint: {
      waitsIn: ['accept4', 'recvfrom'],
      // fork(2) is clone(2) on Linux (without CLONE_THREAD): one per connection.
      required: [['accept4'], ['recvfrom'], ['sendto'], ['clone', 'clone3']],
      forbidden: [...NO_SCAN, ...NO_EPOLL],
    },
  },
  {
    name: 'python-busy',
    summary: 'setblocking(False) everywhere and a loop over accept and every recv, catching BlockingIOError (EAGAIN storm)',
    program: program('busy_server.py'),
    twin: 'nonblocking',
    traits: { waits: 'spin', perConnection: 'none', concurrency: 'all', fdCeiling: 'RLIMIT_NOFILE', triggering: null, coroutines: false },
    fingerprint: {
      waitsIn: [],
      required: [['accept4'], ['recvfrom']],
      forbidden: [...NO_SCAN, ...NO_EPOLL, ...NO_CLONE],
    },
  },
  {
    name: 'python-select',
    summary: 'select.select() over lists of sockets, fd_sets rebuilt every call; fds must be < FD_SETSIZE (1024)',
    program: program('select_server.py'),
    twin: 'select',
    traits: { waits: 'scan-all-fds', perConnection: 'none', concurrency: 'all', fdCeiling: 'FD_SETSIZE', triggering: 'level', coroutines: false },
    fingerprint: {
      waitsIn: ['select', 'pselect6'],
      required: [['select', 'pselect6'], ['recvfrom'], ['sendto']],
      forbidden: ['poll', 'ppoll', ...NO_EPOLL, ...NO_CLONE],
    },
  },
  {
    name: 'python-poll',
    summary: 'select.poll(): a pollfd array kept between calls; no FD_SETSIZE limit, still a linear scan',
    program: program('poll_server.py'),
    twin: 'poll',
    traits: { waits: 'scan-all-fds', perConnection: 'none', concurrency: 'all', fdCeiling: 'RLIMIT_NOFILE', triggering: 'level', coroutines: false },
    fingerprint: {
      waitsIn: ['poll', 'ppoll'],
      required: [['poll', 'ppoll'], ['recvfrom'], ['sendto']],
      forbidden: ['select', 'pselect6', ...NO_EPOLL, ...NO_CLONE],
    },
  },
  {
    name: 'python-epoll',
    summary: 'select.epoll, level-triggered: interest list registered once, epoll_wait returns ready fds',
    program: program('epoll_server.py'),
    twin: 'epoll',
    traits: { waits: 'ready-list', perConnection: 'none', concurrency: 'all', fdCeiling: 'RLIMIT_NOFILE', triggering: 'level', coroutines: false },
    fingerprint: EPOLL_LOOP,
  },
  {
    name: 'python-selectors',
    summary: "selectors.DefaultSelector (EpollSelector on Linux), the course's selectors example: level-triggered epoll",
    program: program('selectors_server.py'),
    twin: 'epoll',
    traits: { waits: 'ready-list', perConnection: 'none', concurrency: 'all', fdCeiling: 'RLIMIT_NOFILE', triggering: 'level', coroutines: false },
    fingerprint: EPOLL_LOOP,
  },
  {
    name: 'python-gevent',
    summary: "gevent: monkey-patched blocking-style code, a greenlet per connection, switched by the hub's libev loop (epoll_wait)",
    program: program('gevent_server.py'),
    twin: 'coroutine',
    traits: { waits: 'ready-list', perConnection: 'none', concurrency: 'all', fdCeiling: 'RLIMIT_NOFILE', triggering: 'level', coroutines: true },
    // libev adds a connection to its epoll set only when a greenlet first waits on it: a server
    // slowed by strace, whose every recv finds data, may never epoll_ctl a connection at all.
    fingerprint: { ...EPOLL_LOOP, required: EPOLL_LOOP.required.filter((entry) => !entry.includes('epoll_ctl')) },
  },
  {
    name: 'python-asyncio',
    summary: "asyncio streams: a coroutine per connection on asyncio's event loop (level-triggered epoll_wait, recv/send)",
    program: program('asyncio_server.py'),
    twin: 'eventloop',
    traits: { waits: 'runtime-loop', perConnection: 'none', concurrency: 'all', fdCeiling: 'RLIMIT_NOFILE', triggering: 'level', coroutines: true },
    fingerprint: EPOLL_LOOP,
  },
];
