/* malloc counter for bench/malloc-count.sh, preloaded into fluxgate (LD_PRELOAD).
 * Counts calls to malloc, calloc, realloc and posix_memalign; SIGWINCH prints the
 * running total to stderr as "mallocs=N". A measuring aid, not product code:
 * valgrind 3.19 here refuses the Swift 6.3 binary ("Possibly corrupted debuginfo
 * file... Giving up"), and ordo-one/benchmark's interposer measures in-process
 * benchmarks, not a running server. heaptrack (apt) attributes allocations to call
 * sites (docs/PERFORMANCE.md uses it for that); this counter only counts. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static atomic_long calls;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_memalign)(void **, size_t, size_t);
static char bootstrap[4096]; static size_t used;
void *malloc(size_t n) { if (!real_malloc) real_malloc = dlsym(RTLD_NEXT, "malloc"); atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); return real_malloc(n); }
void *calloc(size_t a, size_t b) {
  if (!real_calloc) { if (used + a * b > sizeof bootstrap) return NULL; void *p = bootstrap + used; used += (a * b + 15) & ~15UL; return p; }
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); return real_calloc(a, b); }
void *realloc(void *p, size_t n) { if (!real_realloc) real_realloc = dlsym(RTLD_NEXT, "realloc"); atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); return real_realloc(p, n); }
int posix_memalign(void **p, size_t a, size_t n) { if (!real_memalign) real_memalign = dlsym(RTLD_NEXT, "posix_memalign"); atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); return real_memalign(p, a, n); }
void free(void *p) { static void (*real_free)(void *); if ((char *)p >= bootstrap && (char *)p < bootstrap + sizeof bootstrap) return; if (!real_free) real_free = dlsym(RTLD_NEXT, "free"); real_free(p); }
static void report(int sig) { char line[64]; int n = snprintf(line, sizeof line, "mallocs=%ld\n", atomic_load(&calls)); write(2, line, n); (void)sig; }
__attribute__((constructor)) static void init(void) { real_calloc = dlsym(RTLD_NEXT, "calloc"); signal(SIGWINCH, report); }
