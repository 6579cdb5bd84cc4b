// The Linux calls the parked connections' watcher needs (Sources/FluxgateNIO/Proxy/
// ConnectionParking.swift) and Swift's Glibc module does not export: epoll, pipe2 and
// malloc_trim.
// NIO has the same shims in its CNIOLinux target, which is not a product.
#ifndef CFLUXGATE_LINUX_H
#define CFLUXGATE_LINUX_H
#ifdef __linux__
#include <sys/epoll.h>
#include <fcntl.h>
#include <malloc.h>

/// pipe2(2), declared by <unistd.h> only under _GNU_SOURCE.
int cfluxgate_pipe2(int fds[2], int flags);
#endif
#endif
