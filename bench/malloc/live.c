/* Live heap blocks for bench/idle-memory.sh, preloaded into fluxgate (LD_PRELOAD):
 * counts blocks and their usable bytes (malloc_usable_size) as they are allocated and
 * freed, with a histogram by 16-byte size class; SIGWINCH prints the totals to stderr as
 * one "live=N bytes=B hist: ..." line. A measuring aid, not product code (heaptrack
 * attributes blocks to call sites but its peak is not the idle moment; this reads the
 * heap at the moment the connections are held). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static atomic_long live, bytes, hist[64];
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_memalign)(void **, size_t, size_t);
static void (*real_free)(void *);
static char bootstrap[8192]; static size_t used;
static int bucket(size_t n){ return n>=1024? 63 : (int)(n/16); }
static void add(void *p){ if(!p) return; size_t n=malloc_usable_size(p); atomic_fetch_add(&live,1); atomic_fetch_add(&bytes,n); atomic_fetch_add(&hist[bucket(n)],1);}
static void sub(void *p){ if(!p) return; size_t n=malloc_usable_size(p); atomic_fetch_sub(&live,1); atomic_fetch_sub(&bytes,n); atomic_fetch_sub(&hist[bucket(n)],1);}
void *malloc(size_t n){ if(!real_malloc) real_malloc=dlsym(RTLD_NEXT,"malloc"); void*p=real_malloc(n); add(p); return p;}
void *calloc(size_t a,size_t b){ if(!real_calloc){ void*p=bootstrap+used; used+=(a*b+15)&~15UL; return p;} void*p=real_calloc(a,b); add(p); return p;}
void *realloc(void*q,size_t n){ if(!real_realloc) real_realloc=dlsym(RTLD_NEXT,"realloc"); if(q) sub(q); void*p=real_realloc(q,n); add(p?p:NULL); return p;}
int posix_memalign(void**p,size_t a,size_t n){ if(!real_memalign) real_memalign=dlsym(RTLD_NEXT,"posix_memalign"); int r=real_memalign(p,a,n); if(!r) add(*p); return r;}
void free(void*p){ if((char*)p>=bootstrap&&(char*)p<bootstrap+sizeof bootstrap) return; if(!real_free) real_free=dlsym(RTLD_NEXT,"free"); sub(p); real_free(p);}
static void report(int sig){ char line[4096]; int n=snprintf(line,sizeof line,"live=%ld bytes=%ld hist:",atomic_load(&live),atomic_load(&bytes)); for(int i=0;i<64;i++){ n+=snprintf(line+n,sizeof line-n," %d:%ld",i*16,atomic_load(&hist[i])); } line[n++]='\n'; write(2,line,n); (void)sig;}
__attribute__((constructor)) static void init(void){ real_calloc=dlsym(RTLD_NEXT,"calloc"); real_free=dlsym(RTLD_NEXT,"free"); signal(SIGWINCH, report);}
