// Sockets, descriptors, select, epoll and limits: the calls every model and the load generator
// share. Other groups of calls have a file each beside this one (see call.ts for how every call
// is made and checked).
import koffi from 'koffi';
import { ErrnoError } from '../errors.js';
import { check, libc, retrying } from './call.js';

export { EAGAIN, EINTR, WOULD_BLOCK } from './call.js';

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)'),
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ uint32_t *len)'),
  bind: libc.func('int bind(int fd, void *addr, uint32_t len)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  accept4: libc.func('int accept4(int fd, void *addr, void *len, int flags)'),
  connect: libc.func('int connect(int fd, void *addr, uint32_t len)'),
  getsockname: libc.func('int getsockname(int fd, _Out_ void *addr, _Inout_ uint32_t *len)'),
  recv: libc.func('long recv(int fd, void *buf, size_t len, int flags)'),
  send: libc.func('long send(int fd, void *buf, size_t len, int flags)'),
  shutdown: libc.func('int shutdown(int fd, int how)'),
  close: libc.func('int close(int fd)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, ...)'),
  select: libc.func('int select(int nfds, void *readfds, void *writefds, void *exceptfds, void *timeout)'),
  epoll_create1: libc.func('int epoll_create1(int flags)'),
  epoll_ctl: libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  epoll_wait: libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)'),
  getrlimit: libc.func('int getrlimit(int resource, _Out_ void *limits)'),
  setrlimit: libc.func('int setrlimit(int resource, void *limits)'),
  getpid: libc.func('int getpid()'),
  sysconf: libc.func('long sysconf(int name)'),
};

// Constants of Linux x86_64 / glibc (checked against the C headers).
export const AF_INET = 2;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_ERROR = 4;
export const SO_LINGER = 13;
export const IPPROTO_TCP = 6;
export const TCP_NODELAY = 1;
export const MSG_NOSIGNAL = 0x4000;
export const SHUT_WR = 1;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const O_NONBLOCK = 0o4000;
export const RLIMIT_NOFILE = 7;
/** sysconf(3) name of the clock tick rate that /proc/PID/stat counts CPU time in. */
export const _SC_CLK_TCK = 2;
/** glibc's fd_set holds this many bits: select(2) through the C library cannot watch fd >= 1024. */
export const FD_SETSIZE = 1024;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLLET = 1 << 31;
/** struct epoll_event is packed on x86_64: uint32 events at 0, uint64 data at 4. */
export const EPOLL_EVENT_SIZE = 12;

export const EINPROGRESS = 115;


function sockaddrIn(ip: string, port: number): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  }
  const addr = Buffer.alloc(16);
  addr.writeUInt16LE(AF_INET, 0);
  addr.writeUInt16BE(port, 2);
  Buffer.from(parts).copy(addr, 4);
  return addr;
}

export function socket(flags = 0): number {
  return check('socket', c.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0));
}

export function setIntOption(fd: number, level: number, name: number, value: number): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value);
  check('setsockopt', c.setsockopt(fd, level, name, v, 4));
}

/** Reads and clears the socket's pending error (how a non-blocking connect reports its outcome). */
export function socketError(fd: number): number {
  const v = Buffer.alloc(4);
  check('getsockopt', c.getsockopt(fd, SOL_SOCKET, SO_ERROR, v, [4]));
  return v.readInt32LE();
}

/** SO_LINGER with a zero timeout: close() then sends RST instead of FIN (a "reset" peer). */
export function setLingerZero(fd: number): void {
  const v = Buffer.alloc(8);
  v.writeInt32LE(1, 0);
  v.writeInt32LE(0, 4);
  check('setsockopt', c.setsockopt(fd, SOL_SOCKET, SO_LINGER, v, 8));
}

export function bind(fd: number, ip: string, port: number): void {
  check('bind', c.bind(fd, sockaddrIn(ip, port), 16), false);
}

export function listen(fd: number, backlog: number): void {
  check('listen', c.listen(fd, backlog));
}

/** The port a socket is bound to (after binding port 0, the one the kernel chose). */
export function localPort(fd: number): number {
  const addr = Buffer.alloc(16);
  check('getsockname', c.getsockname(fd, addr, [16]));
  return addr.readUInt16BE(2);
}

/** accept4(2): a new connection's fd, or WOULD_BLOCK on a non-blocking listener with none queued. */
export function accept(fd: number, flags = 0): number {
  return retrying('accept4', () => c.accept4(fd, null, null, SOCK_CLOEXEC | flags), true);
}

/** connect(2); on a non-blocking socket returns false while the handshake is still in progress. */
export function connect(fd: number, ip: string, port: number): boolean {
  const ret = c.connect(fd, sockaddrIn(ip, port), 16);
  if (ret === -1 && koffi.errno() === EINPROGRESS) return false;
  check('connect', ret);
  return true;
}

/** recv(2) into buf[offset..]: bytes read (0 = the peer closed), or WOULD_BLOCK. */
export function recv(fd: number, buf: Buffer, offset = 0, length = buf.length - offset): number {
  const target = offset === 0 ? buf : buf.subarray(offset);
  return retrying('recvfrom', () => c.recv(fd, target, length, 0), true);
}

/** send(2) of buf[offset..offset+length]: bytes the kernel took (maybe fewer), or WOULD_BLOCK. */
export function send(fd: number, buf: Buffer, offset = 0, length = buf.length - offset): number {
  const source = offset === 0 ? buf : buf.subarray(offset);
  return retrying('sendto', () => c.send(fd, source, length, MSG_NOSIGNAL), true);
}

export function shutdown(fd: number, how: number): void {
  check('shutdown', c.shutdown(fd, how));
}

export function close(fd: number): void {
  // close(2) is not retried on EINTR: on Linux the fd is released whatever it returns.
  check('close', c.close(fd));
}

export function setNonBlocking(fd: number): void {
  const flags = check('fcntl', c.fcntl(fd, F_GETFL, 'int', 0));
  check('fcntl', c.fcntl(fd, F_SETFL, 'int', flags | O_NONBLOCK));
}

/**
 * select(2) over caller-owned fd_set Buffers (pass null for a set not watched). `timeoutMs`
 * null blocks until an fd is ready. Returns the number of ready fds (0 on timeout).
 */
export function select(nfds: number, readSet: Buffer | null, writeSet: Buffer | null, timeoutMs: number | null): number {
  let timeval: Buffer | null = null;
  if (timeoutMs !== null) {
    timeval = Buffer.alloc(16);
    timeval.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
    timeval.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1000), 8);
  }
  return retrying('select', () => c.select(nfds, readSet, writeSet, null, timeval));
}

export function epollCreate(): number {
  return check('epoll_create1', c.epoll_create1(EPOLL_CLOEXEC));
}

const controlEvent = Buffer.alloc(EPOLL_EVENT_SIZE);

/** epoll_ctl(2) with the fd itself as the event's data. */
export function epollControl(epfd: number, op: number, fd: number, events: number): void {
  controlEvent.writeUInt32LE(events >>> 0, 0);
  controlEvent.writeUInt32LE(fd, 4);
  controlEvent.writeUInt32LE(0, 8);
  check('epoll_ctl', c.epoll_ctl(epfd, op, fd, controlEvent));
}

/** epoll_wait(2) into `events` (a Buffer of EPOLL_EVENT_SIZE-byte records); returns how many. */
export function epollWait(epfd: number, events: Buffer, timeoutMs: number): number {
  return retrying('epoll_wait', () => c.epoll_wait(epfd, events, events.length / EPOLL_EVENT_SIZE, timeoutMs));
}

/** The fd stored as data of the i-th event that epollWait returned. */
export function eventFd(events: Buffer, i: number): number {
  return events.readUInt32LE(i * EPOLL_EVENT_SIZE + 4);
}

/** The event mask (EPOLLIN, EPOLLOUT, ...) of the i-th event that epollWait returned. */
export function eventMask(events: Buffer, i: number): number {
  return events.readUInt32LE(i * EPOLL_EVENT_SIZE);
}

export interface Rlimit {
  soft: number;
  hard: number;
}

const RLIM_INFINITY = 0xffffffffffffffffn;

export function getNofileLimit(): Rlimit {
  const v = Buffer.alloc(16);
  check('getrlimit', c.getrlimit(RLIMIT_NOFILE, v));
  const toNumber = (x: bigint) => (x === RLIM_INFINITY ? Infinity : Number(x));
  return { soft: toNumber(v.readBigUInt64LE(0)), hard: toNumber(v.readBigUInt64LE(8)) };
}

export function setNofileLimit(limit: Rlimit): void {
  const v = Buffer.alloc(16);
  v.writeBigUInt64LE(BigInt(limit.soft), 0);
  v.writeBigUInt64LE(BigInt(limit.hard), 8);
  check('setrlimit', c.setrlimit(RLIMIT_NOFILE, v));
}

/**
 * Lets this process open as many fds as its hard limit allows (the soft limit is often 1024), as
 * any process may: the load generator and the grader's probes hold thousands of sockets.
 * Returns why it could not, or null.
 */
export function raiseNofileToHard(): string | null {
  const limit = getNofileLimit();
  if (limit.soft >= limit.hard || limit.hard === Infinity) return null;
  try {
    setNofileLimit({ soft: limit.hard, hard: limit.hard });
    return null;
  } catch (error) {
    if (!(error instanceof ErrnoError)) throw error;
    return `could not raise the open-file limit from ${limit.soft} to ${limit.hard}: ${error.message}`;
  }
}

export function getpid(): number {
  return c.getpid();
}

/** Clock ticks per second (USER_HZ): the unit of utime and stime in /proc/PID/stat. */
export function clockTicksPerSecond(): number {
  return check('sysconf', c.sysconf(_SC_CLK_TCK));
}

/** fd_set helpers: glibc's fd_set is an array of 1024 bits, least significant bit first. */
export const fdSet = {
  create: (): Buffer => Buffer.alloc(FD_SETSIZE / 8),
  add(set: Buffer, fd: number): void {
    if (fd < 0 || fd >= FD_SETSIZE) throw new RangeError(`fd ${fd} does not fit in an fd_set (FD_SETSIZE=${FD_SETSIZE})`);
    set[fd >> 3] |= 1 << (fd & 7);
  },
  has: (set: Buffer, fd: number): boolean => (set[fd >> 3] & (1 << (fd & 7))) !== 0,
};
