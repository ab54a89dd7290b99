// The reference echo server of iolab's benchmarks: one thread, non-blocking sockets, epoll.
// The course protocol: every byte received is sent back, in order, with ASCII a-z upper-cased.
//
// It is the yardstick the client is measured against (bench/client-ceiling.md), so it does the
// least work that is still correct: level-triggered epoll, one buffer per connection, and a
// connection is not read while its previous echo is still being sent (a client that does not
// read its replies cannot make the server buffer without bound).
//
//   gcc -O2 -o /tmp/echo-server bench/echo-server.c && /tmp/echo-server 7000
//   Port 0 lets the kernel choose one; the line "listening on 127.0.0.1:PORT" tells which.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFER_SIZE 16384
#define MAX_EVENTS 1024

struct connection {
    char buffer[BUFFER_SIZE];
    size_t length; // bytes read and upper-cased, to be sent
    size_t sent;   // of those, bytes already sent
};

static struct connection **connections; // indexed by fd
static int max_fds;
static int epoll_fd;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void watch(int op, int fd, uint32_t events) {
    struct epoll_event event = {.events = events, .data.fd = fd};
    if (epoll_ctl(epoll_fd, op, fd, &event) == -1) die("epoll_ctl");
}

static void drop(int fd) {
    free(connections[fd]);
    connections[fd] = NULL;
    close(fd); // also removes fd from the epoll set
}

// Sends what is pending. Returns 0 when all of it is out, 1 when the socket buffer is full, -1 on
// an error (the peer is gone).
static int flush(int fd, struct connection *c) {
    while (c->sent < c->length) {
        ssize_t n = send(fd, c->buffer + c->sent, c->length - c->sent, MSG_NOSIGNAL);
        if (n == -1) return errno == EAGAIN ? 1 : -1;
        c->sent += n;
    }
    c->length = c->sent = 0;
    return 0;
}

static void on_readable(int fd, struct connection *c) {
    ssize_t n = recv(fd, c->buffer, BUFFER_SIZE, 0);
    if (n == -1 && errno == EAGAIN) return;
    if (n <= 0) { // 0: the peer closed; -1: reset or worse
        drop(fd);
        return;
    }
    for (ssize_t i = 0; i < n; i++)
        if (c->buffer[i] >= 'a' && c->buffer[i] <= 'z') c->buffer[i] -= 'a' - 'A';
    c->length = n;
    int status = flush(fd, c);
    if (status == -1) drop(fd);
    else if (status == 1) watch(EPOLL_CTL_MOD, fd, EPOLLOUT); // stop reading until the echo is out
}

static void on_writable(int fd, struct connection *c) {
    int status = flush(fd, c);
    if (status == -1) drop(fd);
    else if (status == 0) watch(EPOLL_CTL_MOD, fd, EPOLLIN);
}

static void accept_all(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno != EAGAIN) perror("accept4");
            return;
        }
        if (fd >= max_fds || !(connections[fd] = calloc(1, sizeof(struct connection)))) {
            fprintf(stderr, "no room for connection fd %d\n", fd);
            close(fd);
            continue;
        }
        int one = 1; // replies are small and must leave at once, not wait for Nagle
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        watch(EPOLL_CTL_ADD, fd, EPOLLIN);
    }
}

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&address, sizeof address) == -1) die("bind");
    if (listen(fd, SOMAXCONN) == -1) die("listen");
    socklen_t length = sizeof address;
    getsockname(fd, (struct sockaddr *)&address, &length);
    printf("listening on 127.0.0.1:%d\n", ntohs(address.sin_port));
    fflush(stdout);
    return fd;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    // Thousands of connections need thousands of fds: take the whole hard limit.
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_max == RLIM_INFINITY || limit.rlim_max > 1 << 20) limit.rlim_max = 1 << 20;
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
    max_fds = (int)limit.rlim_cur;
    connections = calloc(max_fds, sizeof *connections);

    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd == -1) die("epoll_create1");
    int listener = listen_on(atoi(argv[1]));
    watch(EPOLL_CTL_ADD, listener, EPOLLIN);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int ready = epoll_wait(epoll_fd, events, MAX_EVENTS, -1);
        if (ready == -1) {
            if (errno == EINTR) continue; // e.g. a tracer attached or the process was stopped
            die("epoll_wait");
        }
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) accept_all(listener);
            else if (events[i].events & EPOLLOUT) on_writable(fd, connections[fd]);
            else on_readable(fd, connections[fd]);
        }
    }
}
