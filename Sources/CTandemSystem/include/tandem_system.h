// System calls Swift cannot call directly (variadic in C).
#ifndef TANDEM_SYSTEM_H
#define TANDEM_SYSTEM_H

#ifdef __linux__
#include <signal.h>
#include <sys/prctl.h>
#endif

/// Asks the kernel to send SIGKILL to this process when its parent exits. Returns 0 on success, -1 where the
/// system has no such request (not Linux) or refuses it.
static inline int tandem_kill_with_parent(void) {
#ifdef __linux__
    return prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
#else
    return -1;
#endif
}

#endif
