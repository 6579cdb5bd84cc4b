#ifdef __linux__
#define _GNU_SOURCE
#include <unistd.h>
#include "CFluxgateLinux.h"

int cfluxgate_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
#endif
